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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .durable import copy_file, locked, read_json, write_json

PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def project_dir(model_dir: Path, project: str) -> Path:
    """The project's folder; ids are Label Studio's numbers, anything path-like is refused."""
    if not PROJECT_ID.fullmatch(str(project)):
        raise ValueError(f"project id {project!r} must be letters, digits, '-' or '_'")
    return model_dir / "projects" / str(project)


RUN_FILES = "run-files"  # per run: its epoch curves and Ultralytics' plots, kept with the version it promoted
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


def run_files(model_dir: Path, project: str, run_id: str) -> Path:
    """A run's kept files (``curves.json``, ``results.png``, confusion matrices); ids are never path-like."""
    if not RUN_ID.fullmatch(str(run_id)):
        raise ValueError(f"run id {run_id!r} must be letters, digits, '-' or '_'")
    return project_dir(model_dir, project) / RUN_FILES / str(run_id)


def version_name(project: str, number: int) -> str:
    """Readable and monotonic per project: ``p7-v3`` is project 7's third promoted model."""
    return f"p{project}-v{number}"


ANY = object()  # publish(expect_served=ANY): no check (tools, tests)


class ServedChanged(RuntimeError):
    """Someone chose another served version while a run was going: the run must not undo that."""


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

    def publish(self, candidate: Path, labels: list[str], metrics: dict[str, Any], run_id: str,
                expect_served: object = ANY, **details: Any) -> str:
        """Store ``candidate`` as the next version and serve it; returns the new version name.

        ``expect_served`` is the version the run compared against: if another one serves now
        (a rollback during the run), the user's choice stands and ``ServedChanged`` is raised.
        ``details`` (control, thresholds, runtime verdict, export key) are kept in the entry.
        """
        with locked(self._lock):
            data = self.load()
            if expect_served is not ANY and data["served"] != expect_served:
                raise ServedChanged(f"the served version changed during the run (from {expect_served or 'the base'} "
                                    f"to {data['served'] or 'the base'}, a rollback): it stays, and this candidate "
                                    "is discarded; the next run compares with it")
            number = int(data["next"])
            version = version_name(self.project, number)
            copy_file(candidate, self.folder / "versions" / f"{version}.pt")  # step 1: the weights
            data["versions"].append({"version": version, "number": number, "checkpoint": f"{version}.pt",
                                     "labels": labels, "metrics": metrics, "run_id": run_id,
                                     "created": time.time(), **details})
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
            if entry.get("removed"):
                raise FileNotFoundError(f"{version} was removed by retention (KEEP_VERSIONS keeps the served version "
                                        "and the newest N promoted ones): its scores stay listed, its weights are "
                                        "gone; raise KEEP_VERSIONS to keep more rollback targets")
            if not self.checkpoint(entry).is_file():
                raise FileNotFoundError(f"the checkpoint of {version} is missing from {self.folder / 'versions'}")
            data["served"] = version
            write_json(self.path, data)
        return entry

    def mark_removed(self, versions: list[str], export_keys: dict[str, str] | None = None) -> list[str]:
        """Retention: mark ``versions`` removed and delete their checkpoints; returns the versions it removed.

        1. under the registry lock, so a rollback comes wholly before (the version serves and
           is skipped here) or after (it finds the version removed);
        2. the entries stay, with ``removed`` (unix time), their metrics and ``export_key``
           (``export_keys``), so their scores stay listed and their exports can be found;
        3. the registry is switched first, the files deleted second: a crash between leaves
           files that the next call, given the same versions, deletes.
        The served version and unknown names are skipped.
        """
        with locked(self._lock):
            data = self.load()
            chosen = [v for v in data["versions"] if v["version"] in set(versions) and v["version"] != data["served"]]
            fresh = [v for v in chosen if not v.get("removed")]
            for entry in fresh:
                entry["removed"] = time.time()
                if (export_keys or {}).get(entry["version"]) and not entry.get("export_key"):
                    entry["export_key"] = export_keys[entry["version"]]
            if fresh:  # an unchanged registry keeps its stat: web workers re-read nothing
                write_json(self.path, data)
            for entry in chosen:
                self.checkpoint(entry).unlink(missing_ok=True)
        return [v["version"] for v in chosen]


@dataclass(frozen=True)
class ProjectModel:
    """A promoted version as the web side serves it: checkpoint, name, and what it learned."""

    path: Path
    version: str
    control: str | None  # from_name of the control it was trained for (None: older entries, every control)
    labels: tuple[str, ...]
    thresholds: dict[str, float]  # per-label score thresholds chosen on its holdout


def _project_model(registry: Registry, entry: dict[str, Any]) -> ProjectModel:
    return ProjectModel(registry.checkpoint(entry), entry["version"], entry.get("control"),
                        tuple(entry.get("labels") or ()), dict(entry.get("thresholds") or {}))


class RegistryReader:
    """``lookup(project)`` for ``ModelStore.use_project_models``: cheap, cached by the file's stat.

    Returns the served version first, then the earlier ones still on disk, newest first:
    the store falls back along that list when a checkpoint fails to load.
    """

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._cache: dict[str, tuple[tuple[int, int, int], tuple[ProjectModel, ...]]] = {}
        self._lock = threading.Lock()

    def __call__(self, project: str) -> tuple[ProjectModel, ...]:
        try:
            registry = Registry(self.model_dir, project)
        except ValueError:
            return ()
        try:
            st = registry.path.stat()
        except FileNotFoundError:
            return ()
        key = (st.st_ino, st.st_mtime_ns, st.st_size)  # os.replace gives a new inode
        with self._lock:
            cached = self._cache.get(registry.project)
            if cached and cached[0] == key:
                return cached[1]
        data = registry.load()
        served = [v for v in data["versions"] if v["version"] == data["served"]]
        if not served:
            found: tuple[ProjectModel, ...] = ()
        else:
            earlier = [v for v in reversed(data["versions"]) if v["number"] < served[0]["number"]
                       and not v.get("removed")]
            found = tuple(_project_model(registry, v) for v in [*served, *earlier])
        with self._lock:
            self._cache[registry.project] = (key, found)
        return found
