"""Which engine runs a checkpoint: torch, ONNX Runtime or OpenVINO.

On a CPU an exported graph runs the same network faster than eager torch (see
docs/speed.md). An export is trusted only after it answered as torch does:

1. ``prepare()`` (the training job, or the base model's background load) exports the
   checkpoint once per content, engine and image size under ``MODEL_DIR/runtime/``,
   runs torch and the export on the same images, and writes ``verdict.json`` beside
   the export.
2. ``prepared()`` (a web worker loading a trained version) only reads that verdict:
   no export and no check ever happens inside a request.

The export is loaded back through Ultralytics, so letterboxing, NMS and box scaling
are Ultralytics' own. Anything that goes wrong (package missing, export failure, too
few boxes to judge, answers that differ from torch's) serves torch, with the reason
in the log and the verdict: serving slower beats serving different boxes.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from .detector import Detector, load_ultralytics
from .parity import MIN_COMPARED_BOXES, Parity, same_detections

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx", "openvino")
# Ultralytics export format and the package that must be importable to run it.
_FORMATS = {"onnx": ("onnx", "onnxruntime"), "openvino": ("openvino", "openvino")}
# The order ``auto`` tries on a CPU. Both ran yolov5nu equally fast here (docs/speed.md); ONNX Runtime
# comes first because it is in requirements.txt, OpenVINO is used when installed without it.
AUTO_CPU_ORDER = ("onnx", "openvino")
# Compare at a low confidence so even a barely trained model yields boxes; the second only when the
# first leaves fewer than MIN_COMPARED_BOXES reference boxes.
CHECK_CONFS = (0.05, 0.001)
VERDICT_FILE = "verdict.json"


@dataclass(frozen=True)
class Choice:
    """The engine picked for one checkpoint, and the file it loads from."""

    runtime: str
    path: Path


@dataclass(frozen=True)
class Verdict(Choice):
    """A choice made by checking: how many boxes agreed with torch, and why this engine serves."""

    compared: int
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"runtime": self.runtime, "path": str(self.path), "compared": self.compared, "reason": self.reason}


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


# -- where exports live ------------------------------------------------------
def content_key(checkpoint: Path) -> str:
    """16 hex of the checkpoint's sha256: the same bytes share an export whatever the file is called."""
    digest = hashlib.sha256()
    with checkpoint.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


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


def _record(folder: Path, runtime: str, ok: bool, compared: int, reason: str) -> None:
    """Write ``verdict.json`` atomically: a reader sees the old verdict or the new one, never half."""
    text = json.dumps({"ok": ok, "runtime": runtime, "compared": compared, "reason": reason}, indent=1)
    tmp = folder / f".{VERDICT_FILE}.tmp"
    tmp.write_text(text + "\n")
    os.replace(tmp, folder / VERDICT_FILE)


# -- reading a verdict (web workers) -----------------------------------------
def _passed(folder: Path, runtime: str) -> Path | None:
    """The export in ``folder`` when its verdict says it answers as torch does."""
    verdict = read_verdict(folder)
    if not verdict or verdict.get("ok") is not True or verdict.get("runtime") != runtime:
        return None
    return exported_file(folder, runtime)


def prepared(checkpoint: Path, requested: str, device: str, imgsz: int, cache_root: Path) -> Choice:
    """The first engine whose export passed ``prepare()``'s check; torch otherwise. Never exports."""
    try:
        key = content_key(checkpoint)
        for runtime in candidates(requested, device)[:-1]:
            found = _passed(export_dir(cache_root, key, runtime, imgsz), runtime)
            if found is not None:
                return Choice(runtime, found)
    except Exception as exc:  # an unreadable cache must not stop the service
        log.warning("%s: no usable export (%s: %s); serving torch", checkpoint.name, type(exc).__name__, exc)
        return Choice("torch", checkpoint)
    if requested != "torch" and device.startswith("cpu"):
        log.info("%s: no export checked at %d px; serving torch", checkpoint.name, imgsz)
    return Choice("torch", checkpoint)


# -- threads of a loaded engine (web workers) ---------------------------------
def limit_threads(model: object, runtime: str, exported: Path, threads: int) -> bool:
    """Rebuild the engine session behind ``model`` (after its first predict) with ``threads`` intra-op threads.

    Ultralytics' AutoBackend creates the ONNX Runtime session / OpenVINO compiled model on the
    first predict and passes no thread count: ``ONNXBackend`` accepts ``session_options`` but
    AutoBackend never gives any, and ``OpenVINOBackend`` compiles with its own fixed config. Both
    then use every core, so WORKERS processes side by side would oversubscribe the CPU. Neither
    reads OMP_NUM_THREADS (ONNX Runtime's pip build has its own thread pool). So the session is
    built again once, here, with the count. Returns whether it was; on any failure the default
    session keeps serving.
    """
    backend = getattr(getattr(getattr(model, "predictor", None), "model", None), "backend", None)
    try:
        if runtime == "onnx" and getattr(backend, "session", None) is not None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            providers = backend.session.get_providers()  # type: ignore[union-attr]
            backend.session = onnxruntime.InferenceSession(str(exported), options, providers=providers)  # type: ignore[union-attr]
            return True
        compile_model = getattr(backend, "compile_model", None)
        if runtime == "openvino" and isinstance(compile_model, functools.partial):
            config = {**compile_model.keywords.get("config", {}), "INFERENCE_NUM_THREADS": threads}
            backend.compile_model = functools.partial(compile_model, config=config)  # type: ignore[union-attr]
            xml = exported if exported.suffix == ".xml" else next(exported.glob("*.xml"))
            core = compile_model.func.__self__  # the ov.Core Ultralytics made
            backend.ov_compiled_model = backend.compile_model(core.read_model(str(xml)))  # type: ignore[union-attr]
            return True
    except Exception as exc:
        log.warning("%s: could not set %d %s threads (%s: %s); its default serves", exported.name, threads, runtime,
                    type(exc).__name__, str(exc)[:200])
    return False


# -- exporting and checking (training job, base model at start) ---------------
@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Gunicorn workers start together: one exports and checks, the others wait and reuse its verdict."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _export(checkpoint: Path, folder: Path, runtime: str, imgsz: int) -> Path:
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


def check(checkpoint: Path, exported: Path, device: str, imgsz: int,
          images: Sequence[np.ndarray]) -> tuple[Parity, float]:
    """Torch and the export on the same images, at the first of CHECK_CONFS giving enough boxes; and that conf."""
    reference = Detector(load_ultralytics(checkpoint), device=device, imgsz=imgsz)
    candidate = Detector(load_ultralytics(exported, reference.task), device=device, imgsz=imgsz)
    if candidate.names != reference.names:
        return Parity(0, ("the export lost the class names",)), 0.0
    for conf in CHECK_CONFS:
        expected = reference.detect(images, conf=conf)
        if sum(map(len, expected)) >= MIN_COMPARED_BOXES:
            break
    return same_detections(expected, candidate.detect(images, conf=conf), conf), conf


def _explain(runtime: str, parity: Parity, conf: float, images: int) -> str:
    if parity.ok:
        return f"{runtime}: {parity.compared} boxes match torch on {images} images (conf {conf})"
    more = f" (+{len(parity.problems) - 3} more)" if len(parity.problems) > 3 else ""
    return f"{runtime}: {'; '.join(parity.problems[:3])}{more}" + (f" (conf {conf})" if conf else "")


def _prepare_engine(checkpoint: Path, runtime: str, device: str, imgsz: int, folder: Path,
                    images: Sequence[np.ndarray]) -> Verdict:
    """Export and check one engine, or reuse its passing verdict; any failure is a torch verdict."""
    try:
        with _exclusive(folder.with_name(folder.name + ".lock")):
            earlier = _passed(folder, runtime)
            if earlier is not None:
                verdict = read_verdict(folder) or {}
                return Verdict(runtime, earlier, int(verdict.get("compared", 0)), str(verdict.get("reason", "")))
            exported = _export(checkpoint, folder, runtime, imgsz)
            try:
                parity, conf = check(checkpoint, exported, device, imgsz, images)
            except Exception as exc:  # e.g. a corrupt graph that will not load
                parity, conf = Parity(0, (f"{type(exc).__name__}: {str(exc)[:300]}",)), 0.0
            reason = _explain(runtime, parity, conf, len(images))
            _record(folder, runtime, parity.ok, parity.compared, reason)
    except Exception as exc:  # exporting (or writing the verdict) failed
        return Verdict("torch", checkpoint, 0, f"{runtime}: {type(exc).__name__}: {str(exc)[:300]}")
    if not parity.ok:
        return Verdict("torch", checkpoint, parity.compared, reason)
    return Verdict(runtime, exported, parity.compared, reason)


def _why_torch(requested: str, device: str) -> str:
    if requested == "torch":
        return "RUNTIME=torch"
    if not device.startswith("cpu"):
        return f"exports are for the CPU, this is {device}"
    if requested in _FORMATS:
        return f"RUNTIME={requested} is not usable here (install {_FORMATS[requested][1]})"
    return "no exported runtime installed (onnxruntime or openvino)"


def prepare(checkpoint: Path, requested: str, device: str, imgsz: int, cache_root: Path,
            images: Sequence[np.ndarray]) -> Verdict:
    """The engine that serves ``checkpoint``: the first export that answers as torch does on ``images``.

    ``images`` are BGR uint8 arrays. A passing verdict already on disk is reused; a failed one is
    checked again (other images may give enough boxes). Never raises: any failure is a torch
    verdict with the reason.
    """
    reasons = []
    try:
        key = content_key(checkpoint)
        for runtime in candidates(requested, device)[:-1]:
            verdict = _prepare_engine(checkpoint, runtime, device, imgsz, export_dir(cache_root, key, runtime, imgsz),
                                      images)
            if verdict.runtime == runtime:
                log.info("%s at %d px: %s", checkpoint.name, imgsz, verdict.reason)
                return verdict
            reasons.append(verdict.reason)
    except Exception as exc:
        reasons.append(f"{type(exc).__name__}: {str(exc)[:300]}")
    reason = "; ".join(reasons) or _why_torch(requested, device)
    if reasons or requested not in ("auto", "torch"):
        log.warning("%s at %d px: %s: serving torch", checkpoint.name, imgsz, reason)
    return Verdict("torch", checkpoint, 0, f"{reason}: serving torch")


# -- probe images for the base model ------------------------------------------
PROBE_SIZES = ((480, 352), (352, 480), (416, 416), (640, 288), (320, 240), (288, 384), (512, 384), (448, 256),
               (256, 448))  # (width, height): landscape, portrait, square and wide letterbox differently


def probe_images(seed: int = 0) -> list[np.ndarray]:
    """BGR images of filled rectangles and ellipses on textured backgrounds, to check an export with.

    Made here from numpy and OpenCV alone: what serves does not import the test aids.
    """
    rng = np.random.default_rng(seed)
    return [_probe(rng, width, height) for width, height in PROBE_SIZES]


def _probe(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    import cv2

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 200, size=3).astype(np.float32)
    waves = np.sin(xs[..., None] / rng.uniform(8, 40, 3) + ys[..., None] / rng.uniform(8, 40, 3)) * 30
    pixels = base + waves + rng.normal(0, 12, size=(height, width, 3))
    img = np.ascontiguousarray(np.clip(pixels, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(4, 9))):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        w, h = (int(rng.integers(min(width, height) // 10, min(width, height) // 2)) for _ in range(2))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, thickness=-1)
        else:
            cv2.ellipse(img, (x + w // 2, y + h // 2), (w // 2, h // 2), float(rng.uniform(0, 180)), 0, 360, colour,
                        thickness=-1)
    return img
