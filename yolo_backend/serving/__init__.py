"""What turns a checkpoint into Label Studio results: the backend class and its engines.

``backend`` (``YOLOBackend``: ``setup``, ``predict``, ``fit``) -> ``model_store`` (each checkpoint
loaded once; ``weights`` fetches a missing published one) -> ``loader`` -> ``detector`` (one
thread-safe model) on the engine ``runtime`` checked (``exports``, ``int8``, ``parity``,
``probe_images``, ``engine_threads``); ``uncertainty`` scores a task for review, ``metrics``
counts what it served.
"""
