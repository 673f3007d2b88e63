"""The model class Label Studio's ML backend layout expects in ``model.py``.

The class lives in the package (``yolo_backend/serving/backend.py``); this file only names it,
so nothing in the package imports from above itself.
"""

from yolo_backend.serving.backend import YOLOBackend

__all__ = ["YOLOBackend"]
