"""Which engine runs the served checkpoint: torch, ONNX Runtime or OpenVINO.

On a CPU an exported graph runs the same network faster than eager torch (see
docs/speed.md). The export is made once per model version and image size, cached
under ``MODEL_DIR/runtime/``, and loaded back through Ultralytics, so letterboxing,
NMS and box scaling are Ultralytics' own and detections match torch's. Anything
that goes wrong (package missing, export failure, a graph whose answers differ
from torch's) falls back to torch with the reason in the log: serving slower
beats not serving.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx", "openvino")
# Ultralytics export format and the package that must be importable to run it.
_FORMATS = {"onnx": ("onnx", "onnxruntime"), "openvino": ("openvino", "openvino")}
# The order ``auto`` tries on a CPU. Both ran yolov5nu equally fast here (docs/speed.md); ONNX Runtime
# comes first because it is in requirements.txt, OpenVINO is used when installed without it.
AUTO_CPU_ORDER = ("onnx", "openvino")


@dataclass(frozen=True)
class Choice:
    """The engine picked for one checkpoint, and the file it loads from."""

    runtime: str
    path: Path


def available(runtime: str) -> bool:
    """Whether the package a runtime needs is installed (ONNX export also needs ``onnx``)."""
    if runtime == "torch":
        return True
    needs = [_FORMATS[runtime][1]] + (["onnx"] if runtime == "onnx" else [])
    return all(find_spec(name) is not None for name in needs)


def candidates(requested: str, device: str) -> tuple[str, ...]:
    """Engines to try in order; torch, always last, is the fallback."""
    if requested not in RUNTIMES:
        raise ValueError(f"RUNTIME={requested!r} is not one of {', '.join(RUNTIMES)}")
    if requested == "torch" or not device.startswith("cpu"):
        return ("torch",)  # on a GPU, torch with half precision is the fast path
    wanted = AUTO_CPU_ORDER if requested == "auto" else (requested,)
    return (*(name for name in wanted if available(name)), "torch")


def export_dir(cache_root: Path, version: str, runtime: str, imgsz: int) -> Path:
    """One folder per (model version, engine, image size): a new version never reuses an old graph."""
    return cache_root / f"{version}-{runtime}-{imgsz}"


def exported_file(folder: Path, runtime: str) -> Path | None:
    """The loadable export inside ``folder``, or None when it was never completed."""
    if runtime == "onnx":
        found = sorted(folder.glob("*.onnx"))
    else:
        found = sorted(p for p in folder.glob("*_openvino_model") if any(p.glob("*.xml")))
    return found[0] if found else None


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Gunicorn workers start together: one exports, the others wait and reuse it."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export(checkpoint: Path, folder: Path, runtime: str, imgsz: int) -> Path:
    """Export ``checkpoint`` into ``folder`` (atomically) unless it is already there."""
    with _exclusive(folder.with_name(folder.name + ".lock")):
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
            YOLO(str(copy)).export(format=_FORMATS[runtime][0], imgsz=imgsz, dynamic=True, simplify=True,
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


def choose(checkpoint: Path, version: str, requested: str, device: str, imgsz: int, cache_root: Path) -> Choice:
    """The first engine in ``candidates`` whose export exists or can be made; torch otherwise."""
    for runtime in candidates(requested, device):
        if runtime == "torch":
            break
        try:
            path = export(checkpoint, export_dir(cache_root, version, runtime, imgsz), runtime, imgsz)
            return Choice(runtime, path)
        except Exception as exc:  # any failure: try the next engine, torch at the latest
            log.warning("could not export %s to %s (%s: %s); trying the next runtime",
                        checkpoint.name, runtime, type(exc).__name__, str(exc)[:300])
    if requested not in ("auto", "torch"):
        log.warning("RUNTIME=%s is not usable here (install %s); serving %s with torch",
                    requested, _FORMATS[requested][1], checkpoint.name)
    return Choice("torch", checkpoint)


VERIFY_CONF = 0.05  # low, so even a barely trained model yields detections to compare
VERIFIED_MARK = "verified"


def verify(reference: object, candidate: object, exported: Path, images: int = 3) -> list[str]:
    """Mismatches between torch (``reference``) and an export on generated images; checked once per export.

    Both are ``Detector``s. The export's folder keeps a mark once it passed, so only the
    first worker to load a version pays for this.
    """
    import numpy as np

    from .parity import same_detections
    from .synthetic import draw_sample

    mark = (exported if exported.is_dir() else exported.parent) / VERIFIED_MARK
    if mark.is_file():
        return []
    samples = [np.ascontiguousarray(np.asarray(draw_sample(seed, size=(480, 352))[0])[:, :, ::-1])
               for seed in range(images)]
    expected = reference.detect(samples, conf=VERIFY_CONF)  # type: ignore[attr-defined]
    found = candidate.detect(samples, conf=VERIFY_CONF)  # type: ignore[attr-defined]
    problems = same_detections(expected, found, VERIFY_CONF)
    if not problems:
        mark.write_text("detections match torch\n")
    return problems
