"""INT8 on CPUs: a quantized copy of a checked ONNX export, served only when the holdout says it is as good.

Opt-in (``INT8=true``). Made once per checkpoint content and image size, like the fp32 export
(runtime.py), in ``MODEL_DIR/runtime/<content key>-onnx-int8-<imgsz>/``:

1. ONNX Runtime's static post-training quantization (QDQ, int8 weights per channel, uint8
   activations) of the fp32 export that already answered as torch does, calibrated on the
   project's own training images, letterboxed exactly as Ultralytics serves them.
2. The detection head's decoding (DFL, sigmoid, box arithmetic, concatenation) stays fp32: its
   output mixes pixel coordinates (0..640) and class probabilities (0..1) in one tensor, which one
   uint8 scale cannot hold. Only the convolutions before it are quantized.
3. The gate: the version's holdout is predicted by the fp32 model and by the int8 copy, scored
   the same way (training/scoring.py); the int8 copy serves only if mAP50-95 (top-1 for classes)
   and F1 at the serving thresholds each fall by at most ``INT8_MAX_DROP`` (1 point). Otherwise
   fp32 serves and the verdict (``/training/status``, ``/versions``, the status page) says why.

Nothing here runs in a web request: the training job (or ``yolo-ls int8`` for a base model) makes
and judges the copy; a web worker only reads the verdict (``passed``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .exports import VERDICT_FILE, exclusive, export_dir, read_verdict

log = logging.getLogger(__name__)

RUNTIME = "onnx-int8"  # the folder tag beside "onnx" and "openvino"
VERDICT = VERDICT_FILE
CALIBRATION_IMAGES = 64  # ONNX Runtime's MinMax calibration settles well before this on YOLO models
MAX_DROP = 0.01
BRANCHES = ("cv2", "cv3", "cv4", "proto", "one2one_cv")  # the head's convolution branches


@dataclass(frozen=True)
class Gate:
    """fp32 and int8 scores on one holdout, and whether int8 may serve."""

    ok: bool
    reason: str
    fp32: dict[str, float]
    int8: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "fp32": self.fp32, "int8": self.int8}


def folder_for(cache_root: Path, key: str, imgsz: int) -> Path:
    return export_dir(cache_root, key, RUNTIME, imgsz)


def passed(cache_root: Path, key: str, imgsz: int) -> Path | None:
    """The int8 graph of checkpoint ``key`` at ``imgsz`` when its gate passed; None otherwise."""
    folder = folder_for(cache_root, key, imgsz)
    verdict = read(folder)
    graph = folder / "model-int8.onnx"
    return graph if verdict and verdict.get("ok") is True and graph.is_file() else None


def read(folder: Path) -> dict[str, Any] | None:
    """The gate's verdict in ``folder`` (the fp32 export's reader: same file name, same atomic write)."""
    return read_verdict(folder)


def judge(fp32: dict[str, float], int8: dict[str, float], metric: str, max_drop: float = MAX_DROP) -> Gate:
    """The rule: ``metric`` and F1 of the int8 copy each at most ``max_drop`` below fp32's, on the same holdout."""
    drops = {name: fp32[name] - int8[name] for name in (metric, "f1")}
    facts = ", ".join(f"{name} {int8[name]:.4f} vs fp32 {fp32[name]:.4f}" for name in drops)
    worse = [name for name, drop in drops.items() if drop > max_drop + 1e-9]
    if worse:
        return Gate(False, f"int8 loses more than INT8_MAX_DROP={max_drop:g} in {' and '.join(worse)} ({facts}): "
                           "fp32 serves", fp32, int8)
    return Gate(True, f"int8 within INT8_MAX_DROP={max_drop:g} of fp32 ({facts})", fp32, int8)


def letterboxed(pixels: np.ndarray, imgsz: int) -> np.ndarray:
    """One BGR image as the exported graph's input, letterboxed as Ultralytics serves a dynamic export."""
    from ultralytics.data.augment import LetterBox

    boxed = LetterBox((imgsz, imgsz), auto=True, stride=32)(image=pixels)
    return np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def head_nodes(graph: Any) -> list[str]:
    """Nodes of the last module that decode its output: all but its convolution branches, DFL included.

    The branches (``cv2``, ``cv3``, ``cv4`` of Detect/Segment/Pose/OBB, Segment's ``proto``) are
    convolutions like the backbone's and quantize as well; what follows them turns logits into
    pixels and probabilities.
    """
    numbered = [n for n in graph.node if n.name.startswith("/model.") and n.name.split("/")[1][6:].isdigit()]
    if not numbered:
        return []
    last = max(int(n.name.split("/")[1][6:]) for n in numbered)
    head = f"/model.{last}/"
    return [n.name for n in numbered if n.name.startswith(head) and not n.name[len(head):].startswith(BRANCHES)]


def quantize(fp32: Path, target: Path, images: Iterator[np.ndarray] | Sequence[np.ndarray], imgsz: int) -> Path:
    """Write the int8 copy of ``fp32`` to ``target``, calibrated on ``images`` (BGR), atomically."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.source = iter(images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            pixels = next(self.source, None)
            return None if pixels is None else {name: letterboxed(pixels, imgsz)}

    with tempfile.TemporaryDirectory(prefix="int8-", dir=target.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # graph optimisation and ONNX shape inference; the dynamic input defeats the symbolic pass
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        excluded = head_nodes(onnx.load(str(prepared)).graph)
        partial = Path(tmp) / target.name
        quantize_static(str(prepared), str(partial), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded)
        os.replace(partial, target)
    return target


def prepare(key: str, fp32: Path, cache_root: Path, imgsz: int, calibration: Sequence[np.ndarray],
            score: Callable[[Path], dict[str, float]], fp32_scores: dict[str, float], metric: str,
            max_drop: float = MAX_DROP) -> Gate:
    """Quantize ``fp32`` (once per content and size), score it with ``score`` and record the gate's verdict.

    ``score(graph)`` predicts the holdout with that graph and returns its ``metric`` and ``f1``.
    A verdict already on disk for the same fp32 scores is reused. Never raises: a failure is a
    failed gate with the reason, and fp32 serves.
    """
    folder = folder_for(cache_root, key, imgsz)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with exclusive(folder.with_name(folder.name + ".lock")):
            earlier = read(folder)
            graph = folder / "model-int8.onnx"
            if earlier and earlier.get("fp32") == fp32_scores and graph.is_file():
                return Gate(bool(earlier.get("ok")), str(earlier.get("reason")), fp32_scores, earlier.get("int8", {}))
            if not graph.is_file():
                quantize(fp32, graph, calibration, imgsz)
            gate = judge(fp32_scores, score(graph), metric, max_drop)
            _record(folder, gate)
    except Exception as exc:
        gate = Gate(False, f"int8: {type(exc).__name__}: {str(exc)[:300]}: fp32 serves", fp32_scores, {})
        try:
            _record(folder, gate)
        except OSError:
            pass
    log.info("%s at %d px: %s", key, imgsz, gate.reason)
    return gate


def _record(folder: Path, gate: Gate) -> None:
    tmp = folder / f".{VERDICT}.tmp"
    tmp.write_text(json.dumps(gate.to_json(), indent=1) + "\n")
    os.replace(tmp, folder / VERDICT)
