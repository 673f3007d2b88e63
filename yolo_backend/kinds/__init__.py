"""One module per kind of Label Studio region, and the registry that finds them.

A kind holds its whole data path, as Ultralytics keeps one ``Results`` class per output
kind and one label format per task. Prediction (``serving/backend.py``), training
(``training/dataset.py``, ``training/fitting.py``), import (``ls_tasks``) and export
(``yolo_export``) all go through the functions below, so adding a kind is one new module
here and one line in ``KINDS``.

Every kind module provides (``Kind`` spells it out):

- ``CONTROL``: the label-config tag (``RectangleLabels``); ``RESULT_TYPE``: the ``type``
  of its results (``rectanglelabels``);
- ``TASKS``: the Ultralytics tasks whose checkpoints can serve it, the best first;
- ``TRAIN_TASK``: the task its datasets train (``detect``, ``segment``, ``obb``, ``pose``,
  ``classify``); ``METRIC``: the holdout score it is judged by (``mAP50-95``, ``top-1``);
- ``to_value(det, width, height)``: model output (``convert.Detection``, pixels of the
  displayed image) -> Label Studio value, without the label;
- ``to_line(region, class_id)``: Label Studio region -> one YOLO label row (None when
  the region has nothing to train on);
- ``from_yolo(label, width, height)``: a YOLO label line, parsed by ``convert.parse_yolo_line``,
  on a ``width x height`` displayed image -> Label Studio value, without the label.

A kind whose regions are not one per object and row (a keypoint instance is several
regions; a choice is one region per image) also defines the whole-image hooks, which
otherwise default to the per-region functions above (``HOOKS``):

- ``results(detections, target, width, height)``: every region of one control on one image;
- ``label_rows(regions, class_ids, spec)``: one annotation's regions of one control -> label rows;
- ``import_regions(rows, names, place)``: one image's raw label rows -> regions (``convert.Place``);
- ``shown(detections, spec)``: what of the model output ``results`` could show (single choice:
  the best class), so the holdout scores what annotators get;
- ``truth(row, width, height)`` and ``shape(det)``: what the holdout scoring compares,
  and ``overlap(found, truths)``: their IoU-like similarity matrix (``training.scoring``);
- ``train_classes(spec)``: the class names of its datasets; ``dataset_fields(spec)``: extra
  ``data.yaml`` keys (pose: ``kpt_shape``, ``flip_idx``).

Any kind may define ``refusal(spec)``: why a control of it can be neither served nor trained
(classes: ``choice="multiple"``); ``/setup`` answers it as a 400 and training passes it over.

Two kinds may share a control and result type (boxes and oriented boxes share
``RectangleLabels``): the first in ``KINDS`` is the default, and the serving checkpoint's
task (``detect``/``obb``) picks the other.

Labels, ids, scores and the displayed size are added here, in one envelope
(``convert.region``), the same for every kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ..formats import convert, overlap
from ..formats.controls import ControlSpec, map_classes
from ..formats.convert import Detection, Target, YoloBox
from . import boxes, classes, keypoints, masks, oriented_boxes, outlines, video_boxes

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 pixels


class Kind(Protocol):
    """The interface every kind module implements (module attributes and functions)."""

    CONTROL: str
    RESULT_TYPE: str
    TASKS: tuple[str, ...]
    TRAIN_TASK: str
    METRIC: str

    def to_value(self, det: Detection, width: int, height: int) -> dict[str, Any]: ...

    def to_line(self, region: dict[str, Any], class_id: int) -> str | None: ...

    def from_yolo(self, label: YoloBox, width: int, height: int) -> dict[str, Any]: ...


# The registry: one line per kind. Where two kinds share a control (oriented boxes share
# RectangleLabels), the first one is the default and ``task`` picks the other.
KINDS: tuple[Kind, ...] = (boxes, outlines, oriented_boxes, masks, keypoints, classes)

CONTROLS: dict[str, str] = {kind.CONTROL: kind.RESULT_TYPE for kind in KINDS}  # tag -> result type
RESULT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(kind.RESULT_TYPE for kind in KINDS))
SERVING_TASKS: tuple[str, ...] = tuple(dict.fromkeys(task for kind in KINDS for task in kind.TASKS))
# Kinds of other media (video_boxes: a whole track per region) are found by tag and result type, but
# are not image kinds: the per-image paths above (import, export, region rows) never see them.
MEDIA_KINDS: tuple[Kind, ...] = (video_boxes,)


class UnknownKind(ValueError):
    """No registered kind handles a control tag or result type."""


def for_control(tag: str, task: str | None = None) -> Kind:
    """The kind of a label-config tag (``RectangleLabels`` -> boxes); ``task`` prefers a kind that task serves."""
    return _find("CONTROL", tag, task, f"control <{tag}>", ", ".join(f"<{t}>" for t in CONTROLS))


def for_result(result_type: str, task: str | None = None) -> Kind:
    """The kind of a result ``type`` (``polygonlabels`` -> outlines); ``task`` as in ``for_control``."""
    return _find("RESULT_TYPE", result_type, task, f"result type {result_type!r}", ", ".join(RESULT_TYPES))


def _find(attribute: str, name: str, task: str | None, what: str, known: str) -> Kind:
    matching = [kind for kind in (*KINDS, *MEDIA_KINDS) if getattr(kind, attribute) == name]
    if not matching:
        raise UnknownKind(f"no kind handles {what} (known: {known}): use one of those, or add a module "
                          "under yolo_backend/kinds/ and a line to KINDS")
    return next((kind for kind in matching if task in kind.TASKS), matching[0])


def refusal(spec: ControlSpec) -> str | None:
    """Why no checkpoint can serve or train ``spec`` (its kind's ``refusal`` hook; None: nothing against it)."""
    kind = next((k for k in (*KINDS, *MEDIA_KINDS) if spec.kind == k.RESULT_TYPE), None)
    hook = getattr(kind, "refusal", None)
    return hook(spec) if hook is not None else None


class KindMismatch(ValueError):
    """A checkpoint's task cannot serve a control (an obb checkpoint behind <PolygonLabels>, ...)."""


def serving_kind(result_type: str, task: str, demanded: str | None = None, control: str = "?") -> Kind:
    """The kind a ``task`` checkpoint serves for a ``result_type`` control that may demand a task (model_obb).

    Raises KindMismatch naming the fix when the two do not fit.
    """
    kind = for_result(result_type, demanded or task)
    if demanded and task != demanded:
        raise KindMismatch(f"control {control!r} asks for {demanded} results ({oriented_boxes.FORCE_ATTRIBUTE}="
                           f'"true") but its model is a {task!r} checkpoint: set model_path to an {demanded} '
                           f"checkpoint (e.g. one trained from yolo11n-obb.yaml), or remove "
                           f"{oriented_boxes.FORCE_ATTRIBUTE}")
    if task not in kind.TASKS:
        fits = [f"<{k.CONTROL}>" for k in KINDS if task in k.TASKS]
        raise KindMismatch(f"control {control!r} (<{kind.CONTROL}>) cannot be served by a {task!r} checkpoint, "
                           f"which gives {' or '.join(fits) or 'nothing this backend serves'} regions: use that "
                           f"control, or set model_path to a {' or '.join(kind.TASKS)} checkpoint")
    return kind


# -- model output -> Label Studio ---------------------------------------------------------------
def detection_to_region(det: Detection, target: Target, width: int, height: int, index: int = 0
                        ) -> dict[str, Any]:
    """One detection -> one Label Studio result region for ``target`` (``width x height``: displayed pixels)."""
    kind = for_result(target.kind, target.task)
    return convert.region(kind.to_value(det, width, height), target.labels[det.class_id],
                          result_type=kind.RESULT_TYPE, from_name=target.from_name, to_name=target.to_name,
                          size=(width, height), region_id=convert.region_id(target.from_name, index, det.box),
                          score=det.score)


def each_detection(detections: Sequence[Detection], target: Target, width: int, height: int
                   ) -> list[dict[str, Any]]:
    """The default ``results``: a region per detection whose class maps to a label and whose score passes."""
    return [detection_to_region(det, target, width, height, index) for index, det in enumerate(detections)
            if det.class_id in target.labels and det.score >= target.threshold_for(det.class_id)]


def detections_to_regions(detections: Iterable[Detection], targets: Iterable[Target], width: int, height: int
                          ) -> list[dict[str, Any]]:
    """Every region the model's output gives, for every target, by its kind's ``results``."""
    regions: list[dict[str, Any]] = []
    detections = list(detections)
    for target in targets:
        kind = for_result(target.kind, target.task)
        regions += getattr(kind, "results", each_detection)(detections, target, width, height)
    return regions


# -- YOLO label rows -> Label Studio (import) -----------------------------------------------------
def label_to_region(label: YoloBox, name: str, result_type: str, *, from_name: str, to_name: str,
                    size: tuple[int, int], region_id: str, score: float | None = None, task: str | None = None
                    ) -> dict[str, Any]:
    """One parsed YOLO label line, class ``name``, as a Label Studio region of ``result_type`` (``task``: obb)."""
    kind = for_result(result_type, task)
    return convert.region(kind.from_yolo(label, *size), name, result_type=kind.RESULT_TYPE, from_name=from_name,
                          to_name=to_name, size=size, region_id=region_id, score=score)


# -- Label Studio -> YOLO label rows (training and export) ----------------------------------------
def region_line(region: dict[str, Any], class_ids: Mapping[str, int], task: str | None = None) -> str | None:
    """One region's YOLO row for a ``task`` dataset (obb: oriented); None: another kind, unknown label, no area."""
    if region.get("type") not in RESULT_TYPES:
        return None
    kind = for_result(region["type"], task)
    if task and task not in kind.TASKS:  # a dataset for ``task`` holds the kinds it trains (obb: oriented boxes)
        return None
    label = convert.region_label(region, kind.RESULT_TYPE)
    if label is None or label not in class_ids:
        return None
    return kind.to_line(region, class_ids[label])


def annotation_lines(annotation: dict[str, Any], class_ids: Mapping[str, int], from_name: str | None = None,
                     to_name: str | None = None, task: str | None = None,
                     spec: ControlSpec | None = None) -> list[str]:
    """The label file of one annotation: a row per region of the control (every control when None).

    With ``spec``, a kind with a ``label_rows`` hook writes the rows from the whole annotation
    (keypoints group into instances by their boxes, choices name the image's class).
    """
    everything = [region for region in annotation.get("result") or [] if isinstance(region, dict)]
    if spec is not None:
        kind = for_result(spec.kind, task or spec.task)
        hook = getattr(kind, "label_rows", None)
        if hook is not None:  # it reads its own control's regions, and its companions' (keypoints: boxes)
            return hook(everything, class_ids, spec)
    regions = [region for region in everything if not (from_name and region.get("from_name") != from_name)
               and not (to_name and region.get("to_name") != to_name)]
    lines = [line for line in (region_line(region, class_ids, task) for region in regions) if line is not None]
    return one_row_format([lines])[0]


def one_row_format(files: list[list[str]]) -> list[list[str]]:
    """Label files (rows each) of one dataset, with box rows as their 4 corners once any file holds an outline.

    Ultralytics rejects a file that mixes box and segment rows, segment training rejects a
    dataset that does, and detect training drops every outline of one; as 4 corners a box is
    the same box to detect training and a rectangle-shaped outline to segment training.
    """
    if not any(convert.is_segment_line(line) for lines in files for line in lines):
        return files
    return [[line if convert.is_segment_line(line) else _as_outline(line) for line in lines] for lines in files]


def _as_outline(box_line: str) -> str:
    box = convert.parse_yolo_line(box_line)
    return convert.format_points_line(box.class_id, convert.box_corners(box))


def class_labels(kind: Kind, spec: ControlSpec, names: Mapping[int, str]) -> dict[int, str]:
    """Model class id -> what ``spec`` calls it (default: ``controls.map_classes``; keypoints: instance classes)."""
    hook = getattr(kind, "class_labels", None)
    if hook is not None:
        return dict(hook(spec, names))
    return map_classes(spec, names)


# -- training: classes, data.yaml, and what the holdout scoring compares ---------------------------
def train_classes(kind: Kind, spec: ControlSpec) -> list[str]:
    """The class names of ``kind``'s datasets for ``spec`` (default: the control's labels)."""
    hook = getattr(kind, "train_classes", None)
    return list(hook(spec)) if hook is not None else list(spec.labels)


def dataset_fields(kind: Kind, spec: ControlSpec) -> dict[str, Any]:
    """Extra ``data.yaml`` keys ``kind``'s task needs (pose: ``kpt_shape``, ``flip_idx``)."""
    hook = getattr(kind, "dataset_fields", None)
    return dict(hook(spec)) if hook is not None else {}


def truth(kind: Kind, row: str, width: int, height: int) -> tuple[int, Box, Any]:
    """One label row as (class, pixel box, shape) on a ``width x height`` image, for the holdout scoring."""
    hook = getattr(kind, "truth", None)
    if hook is not None:
        return hook(row, width, height)
    label = convert.parse_yolo_line(row)
    box = ((label.cx - label.w / 2) * width, (label.cy - label.h / 2) * height,
           (label.cx + label.w / 2) * width, (label.cy + label.h / 2) * height)
    shape = tuple((x * width, y * height) for x, y in label.points) if label.points else None
    return label.class_id, box, shape


def shown(kind: Kind, detections: Sequence[Detection], spec: ControlSpec) -> list[Detection]:
    """The detections an annotator could be shown, before thresholds (default: all; single choice: the best)."""
    hook = getattr(kind, "shown", None)
    return list(hook(detections, spec)) if hook is not None else list(detections)


def shape(kind: Kind, det: Detection) -> Any:
    """What of a detection the holdout scoring compares beside its box (default: nothing)."""
    hook = getattr(kind, "shape", None)
    return hook(det) if hook is not None else None


def similarity(kind: Kind, found: Sequence[tuple[Box, Any]], truths: Sequence[tuple[Box, Any]]) -> np.ndarray:
    """(found, truths) IoU-like matrix of ``kind``'s geometry (default: box IoU)."""
    hook = getattr(kind, "overlap", None)
    if hook is not None:
        return hook(found, truths)
    return overlap.box_iou(np.array([b for b, _ in found], float).reshape(-1, 4),
                           np.array([b for b, _ in truths], float).reshape(-1, 4))
