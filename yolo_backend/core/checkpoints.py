"""Where checkpoints may be loaded from, and the version string a checkpoint file gets.

Checkpoints are only read from ``MODEL_ROOT`` (base and per-control ``model_path``) or
from this service's own ``MODEL_DIR`` (trained versions): a request never names a file
elsewhere.
"""

from __future__ import annotations

import threading
from pathlib import Path, PurePosixPath

from ..errors import ModelPathRefused
from .filehash import sha256_of


def safe_model_path(root: Path, relative: str) -> Path:
    """``relative`` inside ``root``; absolute paths, ``..`` and escaping symlinks are refused."""
    if not relative or PurePosixPath(relative).is_absolute() or Path(relative).is_absolute():
        raise ModelPathRefused(f"model path {relative!r} must be relative to MODEL_ROOT")
    if ".." in PurePosixPath(relative.replace("\\", "/")).parts:
        raise ModelPathRefused(f"model path {relative!r} may not contain '..': it must stay under MODEL_ROOT")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ModelPathRefused(f"model path {relative!r} resolves outside MODEL_ROOT")
    return path


def checkpoint_version(path: Path) -> str:
    """Readable and content-bound: ``<file stem>-<8 hex of sha256>``, so new weights get a new version."""
    return f"{path.stem}-{sha256_of(path)[:8]}"


class VersionCache:
    """``checkpoint_version`` per file, hashed again only when its size or mtime changes.

    /setup asks for the version of every ``model_path`` checkpoint on every call; hashing
    a large file each time would be slow.
    """

    def __init__(self) -> None:
        self._known: dict[Path, tuple[tuple[int, int], str]] = {}
        self._lock = threading.Lock()

    def __call__(self, path: Path) -> str:
        st = path.stat()
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._known.get(path)
        if cached and cached[0] == key:
            return cached[1]
        version = checkpoint_version(path)
        with self._lock:
            self._known[path] = (key, version)
        return version
