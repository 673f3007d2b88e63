"""What a project keeps on disk after a run: the served version, the newest KEEP_VERSIONS, the images in use.

Every promoted version is a checkpoint plus one export folder per engine and image
size; every run adds upright training images. Without pruning, ``MODEL_DIR`` only
grows. After each run the recipe calls ``prune``:

1. keep the served version (whatever its age: a rollback may serve an old one) and
   the newest ``keep`` promoted versions, the rollback targets;
2. mark every other version removed in the registry and delete its checkpoint, in one
   step under the registry lock (``Registry.mark_removed``), so a rollback either
   happens before (and the version is kept) or is refused with the reason after;
3. delete the export folders of the removed checkpoints (named by checkpoint content);
4. delete the project's training images that the last run did not use;
5. delete the kept files of runs (curves and plots, ``run-files/<run id>``) unless the run
   made a kept version or is one of the newest RECENT_RUN_FILES runs (the status page
   shows the last runs' curves, rejected ones too).

Removed entries stay in ``registry.json`` with ``"removed": <unix time>`` and their
metrics, so ``/versions`` still lists their scores. Every step is idempotent: a prune
killed half-way leaves files the next prune deletes.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ..core.registry import RUN_FILES, Registry, project_dir

log = logging.getLogger("yolo_backend.training")

RECENT_RUN_FILES = 5  # runs whose curves and plots stay whatever they decided
TRAINING_IMAGES = "training-images"  # per project; image_dataset.collect_examples caches upright copies there


def training_images(model_dir: Path, project: str) -> Path:
    """The project's cache of upright training images, keyed by source content."""
    return project_dir(model_dir, project) / TRAINING_IMAGES


def prune(model_dir: Path, project: str, keep: int, runtime_root: Path, used_images: set[Path]) -> dict[str, Any]:
    """Delete what no rollback or run needs any more; returns what went and the bytes freed.

    ``used_images`` are the upright images of the last run's dataset (``Example.image``);
    every other file in the project's training-images folder is deleted, so call this
    only after a run that built its dataset (an empty set empties the cache).
    """
    registry = Registry(model_dir, project)
    data = registry.load()
    kept = kept_versions(data, keep)
    old = [v for v in data["versions"] if v["version"] not in kept]
    sizes = {v["version"]: _size(registry.checkpoint(v)) for v in old}
    keys = {v["version"]: _export_key(registry, v) for v in old}
    removed = registry.mark_removed([v["version"] for v in old],
                                    export_keys={name: key for name, key in keys.items() if key})
    newly = [v["version"] for v in old if v["version"] in removed and not v.get("removed")]

    in_use = {_export_key(registry, v) for v in data["versions"] if v["version"] in kept}
    exports = [folder for name in removed for folder in _exports_of(runtime_root, name, keys.get(name), in_use)]
    export_bytes = sum(_size(folder) for folder in exports)
    for folder in exports:
        shutil.rmtree(folder, ignore_errors=True)
        folder.with_name(f"{folder.name}.lock").unlink(missing_ok=True)  # the runtime's export lock beside it

    images = unused_images(training_images(model_dir, project), used_images)
    image_bytes = sum(_size(path) for path in images)
    for path in images:
        path.unlink(missing_ok=True)

    run_folders = old_run_files(registry.folder / RUN_FILES, {v.get("run_id") for v in data["versions"]
                                                              if v["version"] in kept})
    run_bytes = sum(_size(folder) for folder in run_folders)
    for folder in run_folders:
        shutil.rmtree(folder, ignore_errors=True)

    report = {"kept": sorted(kept, key=_number_of(data)), "removed": newly,
              "exports": [folder.name for folder in exports], "images": len(images), "run_files": len(run_folders),
              "bytes_freed": sum(sizes[name] for name in removed) + export_bytes + image_bytes + run_bytes}
    if newly or exports or images:
        log.info("project %s: retention kept %s, removed %s, %d export folders, %d training images (%.1f MB)",
                 project, ", ".join(report["kept"]) or "nothing", ", ".join(newly) or "no version",
                 len(exports), len(images), report["bytes_freed"] / 2**20)
    return report


def kept_versions(data: dict[str, Any], keep: int) -> set[str]:
    """The served version and the newest ``keep`` promoted versions still on disk."""
    live = sorted((v for v in data["versions"] if not v.get("removed")), key=lambda v: int(v["number"]))
    newest = live[-keep:] if keep > 0 else []
    return {v["version"] for v in newest} | ({data["served"]} if data.get("served") else set())


def old_run_files(folder: Path, kept_runs: set[str | None]) -> list[Path]:
    """Run folders in ``folder`` of no kept version, past the newest RECENT_RUN_FILES (run ids start with the time)."""
    if not folder.is_dir():
        return []
    runs = sorted((path for path in folder.iterdir() if path.is_dir()), key=lambda path: path.name)
    return [path for path in runs[:-RECENT_RUN_FILES] if path.name not in kept_runs]


def unused_images(folder: Path, used: set[Path]) -> list[Path]:
    """Files in ``folder`` that are not in ``used`` (compared as resolved paths)."""
    if not folder.is_dir():
        return []
    keep = {Path(path).resolve() for path in used}
    return sorted(path for path in folder.iterdir() if path.is_file() and path.resolve() not in keep)


def _export_key(registry: Registry, entry: dict[str, Any]) -> str | None:
    """The content key naming the entry's export folders; computed from the checkpoint for older entries."""
    if entry.get("export_key"):
        return str(entry["export_key"])
    from ..serving import runtime  # lazily: the dataset step imports this module, and needs no detector

    checkpoint = registry.checkpoint(entry)
    return runtime.content_key(checkpoint) if checkpoint.is_file() else None


def _exports_of(runtime_root: Path, version: str, key: str | None, in_use: set[str | None]) -> list[Path]:
    """Export folders of a removed version: by content key (unless a kept version has the same
    weights), and the ones named by version that exports made before content keys."""
    from ..serving import runtime

    folders = runtime.export_dirs(runtime_root, key) if key and key not in in_use else []
    legacy = [p for p in runtime_root.glob(f"{version}-*") if p.is_dir()] if runtime_root.is_dir() else []
    return [*folders, *legacy]


def _size(path: Path) -> int:
    """Bytes in a file, or in every file under a folder; 0 when it is gone."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _number_of(data: dict[str, Any]) -> Any:
    numbers = {v["version"]: int(v["number"]) for v in data["versions"]}
    return lambda name: numbers.get(name, 0)
