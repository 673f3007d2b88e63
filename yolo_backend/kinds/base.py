"""The contract of a kind of region: what every kind says, and the hooks it may override.

A kind is a small subclass of ``Kind`` that overrides what differs, as Ultralytics'
``OBBPredictor(DetectionPredictor)`` overrides one method: oriented boxes are boxes with
their own geometry, video boxes are boxes of another medium. The defaults here are what a
kind with one region per object and one YOLO row per region does (boxes, outlines, masks),
so a reader and a type checker see every hook in one place, never one looked up by name.

Per region (each kind writes them):

- ``to_value(det, width, height)``: model output (``convert.Detection``, pixels of the
  displayed image) -> Label Studio value, without the label;
- ``to_line(region, class_id)``: Label Studio region -> one YOLO label row (None when the
  region has nothing to train on);
- ``from_yolo(label, width, height)``: a YOLO label line, parsed by ``convert.parse_yolo_line``,
  on a ``width x height`` displayed image -> Label Studio value, without the label.

A kind whose regions are not one per object and row (a keypoint instance is several regions,
a choice one per image) is a ``WholeImageKind``: it reads and writes an image's rows at once
(``label_rows``, ``import_regions``) and writes its own ``results``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ..formats import convert
from ..formats import overlap as geometry
from ..formats.controls import ControlSpec, map_classes
from ..formats.convert import Detection, Place, Target, YoloBox

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 pixels
Pair = tuple[Any, Any]  # (pixel box, shape): what the holdout scoring compares


class Kind(ABC):
    """One kind of Label Studio region; subclasses set the class attributes and override what differs."""

    CONTROL: ClassVar[str]  # the label-config tag (``RectangleLabels``)
    RESULT_TYPE: ClassVar[str]  # the ``type`` of its results (``rectanglelabels``)
    TASKS: ClassVar[tuple[str, ...]]  # the Ultralytics tasks whose checkpoints can serve it, the best first
    TRAIN_TASK: ClassVar[str]  # the task its datasets train (detect, segment, obb, pose, classify)
    METRIC: ClassVar[str] = "mAP50-95"  # the holdout score it is judged by
    MEDIA: ClassVar[str] = "image"  # the object tag it is bound to (video boxes: "video")

    def __repr__(self) -> str:
        return f"<kind {type(self).__name__}: <{self.CONTROL}> {self.RESULT_TYPE}>"

    # -- per region: every kind writes these ---------------------------------------------------------
    @abstractmethod
    def to_value(self, det: Detection, width: int, height: int) -> dict[str, Any]:
        """Model output (pixels of the displayed image) -> Label Studio value, without the label."""

    @abstractmethod
    def to_line(self, region: dict[str, Any], class_id: int) -> str | None:
        """Label Studio region -> one YOLO label row; None when it has nothing to train on."""

    @abstractmethod
    def from_yolo(self, label: YoloBox, width: int, height: int) -> dict[str, Any]:
        """A parsed YOLO label line on a ``width x height`` displayed image -> Label Studio value."""

    # -- serving ---------------------------------------------------------------------------------------
    def refusal(self, spec: ControlSpec) -> str | None:
        """Why no checkpoint can serve or train ``spec``; ``/setup`` answers it as a 400 (default: nothing)."""
        return None

    def class_labels(self, spec: ControlSpec, names: Mapping[int, str]) -> dict[int, str]:
        """Model class id -> what ``spec`` calls it (default: ``controls.map_classes``)."""
        return map_classes(spec, names)

    def results(self, detections: Sequence[Detection], target: Target, width: int, height: int
                ) -> list[dict[str, Any]]:
        """Every region of ``target`` on one image (default: one per detection whose class maps and score passes)."""
        return [self.region(det, target, width, height, index) for index, det in enumerate(detections)
                if det.class_id in target.labels and det.score >= target.threshold_for(det.class_id)]

    def region(self, det: Detection, target: Target, width: int, height: int, index: int = 0) -> dict[str, Any]:
        """One detection as one region of ``target``, in ``convert.region``'s envelope (displayed pixels)."""
        spec = target.spec
        return convert.region(self.to_value(det, width, height), target.labels[det.class_id],
                              result_type=self.RESULT_TYPE, from_name=spec.from_name, to_name=spec.to_name,
                              size=(width, height), region_id=convert.region_id(spec.from_name, index, det.box),
                              score=det.score)

    # -- training: classes and data.yaml ---------------------------------------------------------------
    def train_classes(self, spec: ControlSpec) -> list[str]:
        """The class names of its datasets for ``spec`` (default: the control's labels)."""
        return list(spec.labels)

    def dataset_fields(self, spec: ControlSpec) -> dict[str, Any]:
        """Extra ``data.yaml`` keys its task needs (default: none; pose: ``kpt_shape``, ``flip_idx``)."""
        return {}

    # -- holdout scoring -------------------------------------------------------------------------------
    def shown(self, detections: Sequence[Detection], spec: ControlSpec) -> list[Detection]:
        """What of the model output ``results`` could show, before thresholds, so the holdout scores that (all)."""
        return list(detections)

    def truth(self, row: str, width: int, height: int) -> tuple[int, Box, Any]:
        """One label row as (class, pixel box, shape) on a ``width x height`` image (shape: a segment's points)."""
        label = convert.parse_yolo_line(row)
        box = ((label.cx - label.w / 2) * width, (label.cy - label.h / 2) * height,
               (label.cx + label.w / 2) * width, (label.cy + label.h / 2) * height)
        shape = tuple((x * width, y * height) for x, y in label.points) if label.points else None
        return label.class_id, box, shape

    def shape(self, det: Detection) -> Any:
        """What of a detection the holdout scoring compares beside its box (default: nothing)."""
        return None

    def overlap(self, found: Sequence[Pair], truths: Sequence[Pair]) -> np.ndarray:
        """(found, truths) IoU-like matrix of its geometry (default: box IoU)."""
        return geometry.box_iou(np.array([b for b, _ in found], float).reshape(-1, 4),
                                np.array([b for b, _ in truths], float).reshape(-1, 4))


class WholeImageKind(Kind):
    """A kind whose regions are not one per object and row: it reads and writes an image's rows at once."""

    @abstractmethod
    def label_rows(self, regions: Sequence[dict[str, Any]], class_ids: Mapping[str, int], spec: ControlSpec
                   ) -> list[str]:
        """One annotation's regions (every control's: keypoints read their boxes) -> ``spec``'s label rows."""

    @abstractmethod
    def import_regions(self, rows: Sequence[str], names: Mapping[int, str], place: Place) -> list[dict[str, Any]]:
        """One image's raw label rows -> its regions (``place``: control, object, size, id seed)."""
