"""Predicting the holdout the way the service would serve it, and scoring each image by the kind's geometry.

Image holdouts are predicted here (``predict_holdout``); a video's holdout frames by the
tracks serving draws on them (``video_scoring``), which builds on the pieces below.
The dataset's media picks one of the two (``dataset.BUILDERS``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..formats.controls import ControlSpec
from ..kinds import Kind
from ..serving.detector import pick_device
from . import scoring
from .examples import Example

SCORING_CONF = 0.001  # as `yolo val`: every box counts for mAP; thresholds are applied afterwards


def holdout_images(examples: Sequence[Example], batch: int = 16) -> Iterator[list[tuple[Example, np.ndarray]]]:
    """The holdout's upright images as BGR arrays, a batch at a time (a big holdout never sits in memory)."""
    import cv2

    for start in range(0, len(examples), batch):
        chunk = examples[start:start + batch]
        yield [(example, cv2.imread(str(example.image), cv2.IMREAD_COLOR)) for example in chunk]


def truths(example: Example, width: int, height: int, kind: Kind) -> tuple[scoring.Truth, ...]:
    """The annotation's label rows as ``kind`` reads them (class, pixel box, shape) on the upright image."""
    return tuple(scoring.Truth(*kind.truth(line, width, height)) for line in example.lines)


def judged(kind: Kind, found: Sequence[scoring.Found], truth: Sequence[scoring.Truth]) -> scoring.Image:
    """One holdout image, its overlaps computed once by the kind's geometry."""
    ious = kind.overlap([(f.box, f.shape) for f in found], [(t.box, t.shape) for t in truth]) \
        if found and truth else np.zeros((len(found), len(truth)))
    return scoring.Image(tuple(found), tuple(truth), ious)


def no_model(examples: Sequence[Example], kind: Kind) -> list[scoring.Image]:
    """What an annotator gets without weights: nothing, on every holdout image."""
    out = []
    for chunk in holdout_images(examples):
        out += [judged(kind, (), truths(example, pixels.shape[1], pixels.shape[0], kind)) for example, pixels in chunk]
    return out


def holdout_detector(checkpoint: Path, settings: Settings, engine: Path | None = None) -> Any:
    """The checkpoint as the service loads it (IMGSZ or its own size, IOU, MAX_DET); ``engine``: an export of it."""
    from ..serving.detector import Detector, checkpoint_imgsz, checkpoint_iou, load_ultralytics

    model = load_ultralytics(checkpoint)
    imgsz = settings.fixed_imgsz or checkpoint_imgsz(model)
    iou = checkpoint_iou(model) if settings.fixed_iou is None else settings.fixed_iou  # the .pt's, not the export's
    if engine is not None:  # an exported graph of the checkpoint (the int8 gate), at the checkpoint's size
        model = load_ultralytics(engine, model.task)
    return Detector(model, device=pick_device(settings.device), imgsz=imgsz, iou=iou,
                    max_det=settings.max_det, name=checkpoint.name)


def label_indices(kind: Kind, spec: ControlSpec, names: dict[int, str]) -> dict[int, int]:
    """Model class -> index of the control's label it serves as (``predicted_values``, exact, case-folded)."""
    to_label = {name: index for index, name in enumerate(kind.train_classes(spec))}
    return {cls: to_label[label] for cls, label in kind.class_labels(spec, names).items() if label in to_label}


def predict_holdout(checkpoint: Path, examples: Sequence[Example], spec: ControlSpec, settings: Settings,
                    kind: Kind, engine: Path | None = None) -> list[scoring.Image]:
    """Run ``checkpoint`` over the holdout as the service serves it, mapped to ``kind``'s classes for ``spec``.

    Same image size (IMGSZ, or the checkpoint's own under ``auto``), IoU and max_det as
    serving, and the same class -> label mapping (``predicted_values``, exact, case-folded),
    at a low confidence so that every threshold can be judged from one pass. ``engine``: an
    export of the checkpoint predicts instead (the int8 gate).
    """
    detector = holdout_detector(checkpoint, settings, engine)
    mapping = label_indices(kind, spec, detector.names)
    out = []
    for chunk in holdout_images(examples):
        found = detector.detect([pixels for _, pixels in chunk], conf=SCORING_CONF)
        for (example, pixels), detections in zip(chunk, found):
            mapped = [scoring.Found(mapping[d.class_id], d.score, d.box, kind.shape(d))
                      for d in kind.shown(detections, spec) if d.class_id in mapping]
            out.append(judged(kind, mapped, truths(example, pixels.shape[1], pixels.shape[0], kind)))
    return out
