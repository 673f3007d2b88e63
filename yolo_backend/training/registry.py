"""Per-project model versions and their metrics, in ``MODEL_DIR/projects/<id>/registry.json``.

Publishing is two atomic steps: the checkpoint is copied into ``versions/`` under its
final name, then the registry file is replaced. A crash between them leaves an unused
file and the old registry, so the served model never changes half-way. Every web
worker reads the registry through ``RegistryReader``, which re-reads it only when its
``stat`` changes, so a version promoted by another process is served on the next request.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

from .durable import copy_file, locked, read_json, write_json

PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def project_dir(model_dir: Path, project: str) -> Path:
    """The project's folder; ids are Label Studio's numbers, anything path-like is refused."""
    if not PROJECT_ID.fullmatch(str(project)):
        raise ValueError(f"project id {project!r} must be letters, digits, '-' or '_'")
    return model_dir / "projects" / str(project)


def version_name(project: str, number: int) -> str:
    """Readable and monotonic per project: ``p7-v3`` is project 7's third promoted model."""
    return f"p{project}-v{number}"


class Registry:
    """Versions of one project; all writes hold the project's registry lock."""

    def __init__(self, model_dir: Path, project: str) -> None:
        self.project = str(project)
        self.folder = project_dir(model_dir, project)
        self.path = self.folder / "registry.json"
        self._lock = self.folder / "registry.lock"

    def load(self) -> dict[str, Any]:
        return read_json(self.path, {"project": self.project, "next": 1, "served": None, "versions": []})

    def served(self) -> dict[str, Any] | None:
        """The served version's entry, or None while the project has no trained model."""
        data = self.load()
        return next((v for v in data["versions"] if v["version"] == data["served"]), None)

    def checkpoint(self, entry: dict[str, Any]) -> Path:
        return self.folder / "versions" / entry["checkpoint"]

    def publish(self, candidate: Path, labels: list[str], metrics: dict[str, Any], run_id: str) -> str:
        """Store ``candidate`` as the next version and serve it; returns the new version name."""
        with locked(self._lock):
            data = self.load()
            number = int(data["next"])
            version = version_name(self.project, number)
            copy_file(candidate, self.folder / "versions" / f"{version}.pt")  # step 1: the weights
            data["versions"].append({"version": version, "number": number, "checkpoint": f"{version}.pt",
                                     "labels": labels, "metrics": metrics, "run_id": run_id,
                                     "created": time.time()})
            data["next"], data["served"] = number + 1, version
            write_json(self.path, data)  # step 2: the switch, one rename
        return version

    def serve(self, version: str) -> dict[str, Any]:
        """Rollback (or forward): serve an earlier promoted ``version`` of this project."""
        with locked(self._lock):
            data = self.load()
            entry = next((v for v in data["versions"] if v["version"] == version), None)
            if entry is None:
                known = ", ".join(v["version"] for v in data["versions"]) or "none yet"
                raise KeyError(f"project {self.project} has no version {version!r} (known: {known})")
            if not self.checkpoint(entry).is_file():
                raise FileNotFoundError(f"the checkpoint of {version} is missing from {self.folder / 'versions'}")
            data["served"] = version
            write_json(self.path, data)
        return entry


class RegistryReader:
    """``lookup(project)`` for ``ModelStore.use_project_models``: cheap, cached by the file's stat."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._cache: dict[str, tuple[tuple[int, int, int], tuple[Path, str] | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, project: str) -> tuple[Path, str] | None:
        try:
            registry = Registry(self.model_dir, project)
        except ValueError:
            return None
        try:
            st = registry.path.stat()
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)  # os.replace gives a new inode
        with self._lock:
            cached = self._cache.get(registry.project)
            if cached and cached[0] == key:
                return cached[1]
        entry = registry.served()
        found = (registry.checkpoint(entry), entry["version"]) if entry else None
        with self._lock:
            self._cache[registry.project] = (key, found)
        return found
