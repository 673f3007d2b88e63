"""The int8 copy of a model, made and judged on labeled images: a trained version, or a base model.

``int8.py`` quantizes and applies the rule; this module feeds it what only training knows:
the holdout, its scoring as the promotion gate scores (``scoring.score``, the kind's metric
and F1 at the serving thresholds), and calibration images that are not judged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from .. import int8, kinds
from ..config import Settings
from ..kinds import Kind
from ..label_config import ControlSpec, parse
from . import scoring
from .dataset import Dataset, Example

log = logging.getLogger(__name__)


def for_version(candidate: Path, verdict: dict, imgsz: int, dataset: Dataset, spec: ControlSpec, settings: Settings,
                kind: Kind, fp32: scoring.Scores) -> dict:
    """Quantize a candidate's checked ONNX export, calibrated on its training images; judge it on its holdout."""
    from .fitting import holdout_images

    refused = _refused(kind, verdict)
    if refused:
        return {"ok": False, "reason": refused}
    calibration = [pixels for chunk in holdout_images(dataset.train[:int8.CALIBRATION_IMAGES]) for _, pixels in chunk]
    gate = int8.prepare(str(verdict["key"]), Path(str(verdict["path"])), settings.model_dir_path / "runtime", imgsz,
                        calibration, _scorer(candidate, dataset.holdout, spec, settings, kind), _pair(fp32),
                        fp32.metric, settings.int8_max_drop)
    return gate.to_json()


def for_base(checkpoint: Path, folder: Path, settings: Settings) -> dict:
    """``yolo-ls int8``: the same gate for a checkpoint no run trained, on a labeled YOLO folder.

    The folder's labeled images alternate: odd ones judge, even ones calibrate (at most
    CALIBRATION_IMAGES), so no image is judged by a graph calibrated on it. The fp32 ONNX
    export is made and checked against torch as the service would at start; the int8 copy
    lands beside it in ``MODEL_DIR/runtime``, where a worker with ``INT8=true`` finds it.
    """
    import cv2

    from .. import runtime
    from ..detector import checkpoint_imgsz, load_ultralytics, pick_device
    from ..yolo_folder import find_samples

    samples = [s for s in find_samples(folder) if s.label is not None]
    if len(samples) < 4:
        raise ValueError(f"{folder}: {len(samples)} labeled images; the gate needs at least 4 (2 judged)")
    model = load_ultralytics(checkpoint)
    kind = kinds.for_result("rectanglelabels", model.task)
    labels = "".join(f'<Label value="{name}"/>' for name in model.names.values())
    spec = parse(f'<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">{labels}'
                 '</RectangleLabels></View>')[0]
    examples = [Example(i, s.image, tuple(line for line in s.label.read_text().splitlines() if line.strip()))
                for i, s in enumerate(samples) if s.label is not None]
    judged, calibrating = examples[1::2], examples[0::2][:int8.CALIBRATION_IMAGES]
    imgsz = settings.fixed_imgsz or checkpoint_imgsz(model)
    calibration = [cv2.imread(str(e.image), cv2.IMREAD_COLOR) for e in calibrating]
    verdict = runtime.prepare(checkpoint, "onnx", pick_device(settings.device), imgsz,
                              settings.model_dir_path / "runtime", calibration[:16])
    refused = _refused(kind, {**verdict.to_json(), "key": runtime.content_key(checkpoint)})
    if refused:
        return {"ok": False, "reason": refused}
    score = _scorer(checkpoint, judged, spec, settings, kind, per_class=False)
    fp32 = score(None)
    gate = int8.prepare(runtime.content_key(checkpoint), verdict.path, settings.model_dir_path / "runtime", imgsz,
                        calibration, score, fp32, kind.METRIC, settings.int8_max_drop)
    return {**gate.to_json(), "judged_images": len(judged), "calibration_images": len(calibration), "imgsz": imgsz}


def _refused(kind: Kind, verdict: dict) -> str | None:
    if kind.TRAIN_TASK == "classify":
        return "int8 is made for detection models only: fp32 serves"
    if verdict.get("runtime") != "onnx":
        return (f"int8 needs the checked ONNX Runtime export, {verdict.get('runtime')} serves "
                f"({verdict.get('reason')}): fp32 serves")
    return None


def _pair(scores: scoring.Scores) -> dict[str, float]:
    return {scores.metric: round(scores.quality, 4), "f1": round(scores.f1, 4)}


def _scorer(checkpoint: Path, holdout: list[Example], spec: ControlSpec, settings: Settings, kind: Kind,
            per_class: bool = True) -> Callable[[Path | None], dict[str, float]]:
    """Scores of the checkpoint (None) or an export of it on ``holdout``, as the promotion gate scores.

    ``per_class``: F1 at thresholds chosen per class, as a trained version is served
    (CLASS_THRESHOLDS); a base model serves at MODEL_SCORE_THRESHOLD.
    """
    from .fitting import predict_holdout

    labels = kinds.train_classes(kind, spec)

    def score(graph: Path | None) -> dict[str, float]:
        found = predict_holdout(checkpoint, holdout, spec, settings, kind, engine=graph)
        chosen = per_class and settings.class_thresholds
        return _pair(scoring.score(found, len(labels), settings.model_score_threshold,
                                   control_threshold=spec.threshold, choose_per_class=chosen, metric=kind.METRIC))

    return score
