"""What serving, the web side, formats and training all read: the bottom layer.

Durable JSON files (``durable``), the registry of each project's versions (``registry``), a
run's named states (``state``) and where a project's runs stand (``status``), where checkpoints
may be read from and the version string each gets (``checkpoints``), the one split rule
(``split``), file digests (``filehash``) and a child process's environment (``processes``).
It imports nothing of the package but ``errors``.
"""
