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

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from ..core.processes import child_env
from .detector import Detector, load_ultralytics
from .engine_threads import limit_threads
from .exports import (
    FORMATS,
    VERDICT_FILE,
    content_key,
    exclusive,
    export_dir,
    export_dirs,
    exported_file,
    make_export,
    passed,
    read_verdict,
    record_verdict,
)
from .parity import MIN_COMPARED_BOXES, Parity, same_detections
from .probe_images import probe_images

__all__ = ["VERDICT_FILE", "Choice", "Verdict", "available", "candidates", "check", "content_key", "export_dir",
           "export_dirs", "exported_file", "limit_threads", "prepare", "prepared", "probe_images", "read_verdict"]

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx", "openvino")
# The order ``auto`` tries on a CPU. Both ran yolov5nu equally fast here (docs/speed.md); ONNX Runtime
# comes first because it is in requirements.txt, OpenVINO is used when installed without it.
AUTO_CPU_ORDER = ("onnx", "openvino")
# Compare at a low confidence so even a barely trained model yields boxes; the second only when the
# first leaves fewer than MIN_COMPARED_BOXES reference boxes.
CHECK_CONFS = (0.05, 0.001)


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
    needs = [FORMATS[runtime][1]] + (["onnx"] if runtime == "onnx" else [])
    return all(find_spec(name) is not None for name in needs)


def candidates(requested: str, device: str) -> tuple[str, ...]:
    """Engines to try in order; torch, always last, is the fallback."""
    if requested not in RUNTIMES:
        raise ValueError(f"RUNTIME={requested!r} is not one of {', '.join(RUNTIMES)}")
    if requested == "torch" or not device.startswith("cpu"):
        return ("torch",)  # on a GPU, torch with half precision is the fast path
    wanted = AUTO_CPU_ORDER if requested == "auto" else (requested,)
    return (*(name for name in wanted if available(name)), "torch")


# -- reading a verdict (web workers) -----------------------------------------


def prepared(checkpoint: Path, requested: str, device: str, imgsz: int, cache_root: Path,
             quiet: bool = False) -> Choice:
    """The first engine whose export passed ``prepare()``'s check; torch otherwise. Never exports.

    ``quiet``: no log line when none passed (the caller is about to check one).
    """
    try:
        key = content_key(checkpoint)
        for runtime in candidates(requested, device)[:-1]:
            found = passed(export_dir(cache_root, key, runtime, imgsz), runtime)
            if found is not None:
                return Choice(runtime, found)
    except Exception as exc:  # an unreadable cache must not stop the service
        log.warning("%s: no usable export (%s: %s); serving torch", checkpoint.name, type(exc).__name__, exc)
        return Choice("torch", checkpoint)
    if requested != "torch" and device.startswith("cpu") and not quiet:
        log.info("%s: no export checked at %d px; serving torch", checkpoint.name, imgsz)
    return Choice("torch", checkpoint)


# -- exporting and checking (training job, base model at start) ---------------


def check(checkpoint: Path, exported: Path, device: str, imgsz: int,
          images: Sequence[np.ndarray]) -> tuple[Parity, float]:
    """Torch and the export on the same images, at the first of CHECK_CONFS giving enough boxes; and that conf."""
    reference = Detector(load_ultralytics(checkpoint), device=device, imgsz=imgsz)
    candidate = Detector(load_ultralytics(exported, reference.task), device=device, imgsz=imgsz,
                         iou=reference.iou)  # the checkpoint's NMS IoU: an export does not keep it
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
        with exclusive(folder.with_name(folder.name + ".lock")):
            earlier = passed(folder, runtime)
            if earlier is not None:
                verdict = read_verdict(folder) or {}
                return Verdict(runtime, earlier, int(verdict.get("compared", 0)), str(verdict.get("reason", "")))
            exported = make_export(checkpoint, folder, runtime, imgsz)
            try:
                parity, conf = check(checkpoint, exported, device, imgsz, images)
            except Exception as exc:  # e.g. a corrupt graph that will not load
                parity, conf = Parity(0, (f"{type(exc).__name__}: {str(exc)[:300]}",)), 0.0
            reason = _explain(runtime, parity, conf, len(images))
            record_verdict(folder, runtime, parity.ok, parity.compared, reason)
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
    if requested in FORMATS:
        return f"RUNTIME={requested} is not usable here (install {FORMATS[requested][1]})"
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


# -- the base model's check, in its own process ---------------------------------

VERDICT_LINE = "runtime-verdict: "


def prepare_apart(checkpoint: Path, requested: str, device: str, imgsz: int, cache_root: Path,
                  timeout: float = 1800) -> Verdict:
    """``prepare()`` on probe images in a child process; the web worker only reads its verdict.

    The check runs torch's inference, whose working memory (about 270 MB for yolov5nu at
    640 px, measured) a process keeps for good; a worker that then serves an export would
    carry it for nothing. Any failure of the child is a torch verdict with the reason.
    """
    argv = [sys.executable, "-m", "yolo_backend.serving.runtime", str(checkpoint), requested, device, str(imgsz),
            str(cache_root)]
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, timeout=timeout, env=child_env(), check=False)
        line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith(VERDICT_LINE))
        data = json.loads(line[len(VERDICT_LINE):])
        return Verdict(str(data["runtime"]), Path(data["path"]), int(data["compared"]), str(data["reason"]))
    except (OSError, subprocess.SubprocessError, StopIteration, ValueError, KeyError, TypeError) as exc:
        reason = f"the export check's process failed ({type(exc).__name__}: {str(exc)[:200]}): serving torch"
        log.warning("%s at %d px: %s", checkpoint.name, imgsz, reason)
        return Verdict("torch", checkpoint, 0, reason)


if __name__ == "__main__":  # the child of prepare_apart()
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s")
    path, engine, on, size, root = sys.argv[1:6]
    found = prepare(Path(path), engine, on, int(size), Path(root), probe_images())
    print(VERDICT_LINE + json.dumps(found.to_json()), flush=True)
