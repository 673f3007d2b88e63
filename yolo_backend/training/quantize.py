"""The int8 copy of a model, made and judged on labeled images: a trained version, or a base model.

``serving/int8.py`` quantizes and applies the rule; this module feeds it what only training knows:
the holdout, its scoring as the promotion gate scores (``scoring.score``, the kind's metric
and F1), and calibration images that are not judged. Both copies are judged at the thresholds
the version is stored and served with (the fp32 candidate's per-class thresholds, else the
control's or MODEL_SCORE_THRESHOLD): thresholds re-tuned on the int8 copy's own predictions
would forgive a copy whose scores all shifted, which serving at fp32's thresholds does not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from .. import kinds
from ..config import Settings
from ..formats.controls import ControlSpec
from ..formats.label_config import parse
from ..kinds import Kind
from ..serving import int8
from . import scoring
from .examples import Dataset, Example

log = logging.getLogger(__name__)


def for_version(candidate: Path, verdict: dict, imgsz: int, dataset: Dataset, spec: ControlSpec, settings: Settings,
                kind: Kind, thresholds: dict[str, float]) -> dict:
    """Quantize a candidate's checked ONNX export, calibrated on its training images; judge it on its holdout.

    ``thresholds``: label -> the per-class threshold the version is published with; fp32 and
    int8 are both scored at them (as served), on the holdout predicted as served (a video's as tracks).
    """
    from .dataset import for_dataset
    from .holdout import holdout_images

    refused = _refused(kind, verdict)
    if refused:
        return {"ok": False, "reason": refused}
    calibration = [pixels for chunk in holdout_images(dataset.train[:int8.CALIBRATION_IMAGES]) for _, pixels in chunk]
    labels = kind.train_classes(spec)
    served = [thresholds.get(label, settings.model_score_threshold) for label in labels] \
        if settings.class_thresholds else None
    score = _scorer(candidate, dataset.holdout, spec, settings, kind, served, for_dataset(dataset).predict)
    gate = int8.prepare(str(verdict["key"]), Path(str(verdict["path"])), settings.model_dir_path / "runtime", imgsz,
                        calibration, score, score(None), kind.METRIC, settings.int8_max_drop)
    return {**gate.to_json(), "thresholds": dict(thresholds) if served else {}}


def for_base(checkpoint: Path, folder: Path, settings: Settings) -> dict:
    """``yolo-ls int8``: the same gate for a checkpoint no run trained, on a labeled YOLO folder.

    The folder's labeled images alternate: odd ones judge, even ones calibrate (at most
    CALIBRATION_IMAGES), so no image is judged by a graph calibrated on it. The fp32 ONNX
    export is made and checked against torch as the service would at start; the int8 copy
    lands beside it in ``MODEL_DIR/runtime``, where a worker with ``INT8=true`` finds it.
    """
    import cv2

    from ..formats.yolo_folder import find_samples
    from ..serving import runtime
    from ..serving.detector import checkpoint_imgsz, load_ultralytics, pick_device

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
    score = _scorer(checkpoint, judged, spec, settings, kind)  # a base serves at MODEL_SCORE_THRESHOLD
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
            served: list[float] | None = None, predict: Callable[..., list[scoring.Image]] | None = None
            ) -> Callable[[Path | None], dict[str, float]]:
    """Scores of the checkpoint (None) or an export of it on ``holdout``, at the thresholds it is served with.

    ``served``: per label, the version's own thresholds; None: MODEL_SCORE_THRESHOLD for every
    label (a base model). The control's ``model_score_threshold`` comes first, as in serving.
    Never thresholds chosen on the graph's own predictions: that would judge int8 at thresholds
    it is never served with. ``predict``: how the holdout is predicted (``dataset.Builder.predict``).
    """
    from .holdout import predict_holdout

    labels = kind.train_classes(spec)
    predict = predict or predict_holdout

    def score(graph: Path | None) -> dict[str, float]:
        found = predict(checkpoint, holdout, spec, settings, kind, engine=graph)
        return _pair(scoring.score(found, len(labels), settings.model_score_threshold, served_thresholds=served,
                                   control_threshold=spec.threshold, metric=kind.METRIC))

    return score
