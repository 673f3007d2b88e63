"""Exported engines on disk: one folder per checkpoint content, engine and image size, with its verdict.

``MODEL_DIR/runtime/<content key>-<engine>-<imgsz>/`` holds the export and ``verdict.json``
(whether it answered as torch does, on how many boxes, and why). Keyed by the bytes of
the checkpoint, not its name: a trained candidate (``best.pt``) and its published copy
(``p7-v3.pt``) share one export, and new weights never reuse an old graph.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..core.filehash import sha256_of

# Ultralytics export format and the package that must be importable to run it.
FORMATS = {"onnx": ("onnx", "onnxruntime"), "openvino": ("openvino", "openvino")}
VERDICT_FILE = "verdict.json"


def content_key(checkpoint: Path) -> str:
    """16 hex of the checkpoint's sha256: the same bytes share an export whatever the file is called."""
    return sha256_of(checkpoint)[:16]


def export_dir(cache_root: Path, key: str, runtime: str, imgsz: int) -> Path:
    """One folder per (checkpoint content, engine, image size): new weights never reuse an old graph."""
    return cache_root / f"{key}-{runtime}-{imgsz}"


def export_dirs(cache_root: Path, key: str) -> list[Path]:
    """Every export folder of one checkpoint (all engines and sizes); each has a ``<folder>.lock`` beside it."""
    return sorted(p for p in cache_root.glob(f"{key}-*") if p.is_dir())


def exported_file(folder: Path, runtime: str) -> Path | None:
    """The loadable export inside ``folder``, or None when it was never completed."""
    if runtime == "onnx":
        found = sorted(folder.glob("*.onnx"))
    else:
        found = sorted(p for p in folder.glob("*_openvino_model") if any(p.glob("*.xml")))
    return found[0] if found else None


def read_verdict(folder: Path) -> dict | None:
    """The verdict written by ``prepare()``, or None when there is none (or it is unreadable)."""
    try:
        verdict = json.loads((folder / VERDICT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return verdict if isinstance(verdict, dict) else None


def record_verdict(folder: Path, runtime: str, ok: bool, compared: int, reason: str) -> None:
    """Write ``verdict.json`` atomically: a reader sees the old verdict or the new one, never half."""
    text = json.dumps({"ok": ok, "runtime": runtime, "compared": compared, "reason": reason}, indent=1)
    tmp = folder / f".{VERDICT_FILE}.tmp"
    tmp.write_text(text + "\n")
    os.replace(tmp, folder / VERDICT_FILE)


def passed(folder: Path, runtime: str) -> Path | None:
    """The export in ``folder`` when its verdict says it answers as torch does."""
    verdict = read_verdict(folder)
    if not verdict or verdict.get("ok") is not True or verdict.get("runtime") != runtime:
        return None
    return exported_file(folder, runtime)


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Gunicorn workers start together: one exports and checks, the others wait and reuse its verdict."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_export(checkpoint: Path, folder: Path, runtime: str, imgsz: int) -> Path:
    """Export ``checkpoint`` into ``folder`` (atomically) unless it is already there; the caller holds the lock."""
    done = exported_file(folder, runtime)
    if done is not None:
        return done
    from ultralytics import YOLO

    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        # Export writes beside its input; MODEL_ROOT may be read-only, so work on a copy.
        copy = work / checkpoint.name
        shutil.copy2(checkpoint, copy)
        # dynamic: the graph takes rectangular letterboxed inputs as torch does (640x480, not 640x640),
        # which is both faster and the same preprocessing as torch, hence the same boxes.
        YOLO(str(copy)).export(format=FORMATS[runtime][0], imgsz=imgsz, dynamic=True, simplify=True,
                               device="cpu", verbose=False)  # fp32: fp16/int8 would move the boxes
        copy.unlink()
        if exported_file(work, runtime) is None:
            raise RuntimeError(f"Ultralytics reported no {runtime} export in {work}")
        shutil.rmtree(folder, ignore_errors=True)
        work.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = exported_file(folder, runtime)
    assert found is not None
    return found
