"""One module per kind of Label Studio region, and the registry that finds them.

A kind holds its whole data path, as Ultralytics keeps one ``Results`` class per output
kind and one label format per task. Prediction (``model.py``), training
(``training/dataset.py``), import (``ls_tasks``, ``yolo_folder``) and export
(``yolo_export``) all go through the functions below, so adding a kind is one new
module here and one line in ``KINDS``.

A kind module provides (``Kind`` spells it out):

- ``CONTROL``: the label-config tag (``RectangleLabels``); ``RESULT_TYPE``: the ``type``
  of its results (``rectanglelabels``);
- ``TASKS``: the Ultralytics tasks whose checkpoints can serve it, the best first;
- ``METRIC``: the name of the score its holdout is judged by;
- ``to_value(det, width, height)``: model output (``convert.Detection``, pixels of the
  displayed image) -> Label Studio value, without the label;
- ``to_line(region, class_id)``: Label Studio region -> one YOLO label row (None when
  the region has nothing to train on);
- ``from_yolo(label, width, height)``: a YOLO label line, parsed by ``convert.parse_yolo_line``,
  on a ``width x height`` displayed image -> Label Studio value, without the label.

Two kinds may share a control and result type (boxes and oriented boxes share
``RectangleLabels``): the first in ``KINDS`` is the default, and the serving checkpoint's
task (``detect``/``obb``) picks the other.

Labels, ids, scores and the displayed size are added here, in one envelope
(``convert.region``), the same for every kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .. import convert
from ..convert import Detection, Target, YoloBox
from . import boxes, oriented_boxes, outlines


class Kind(Protocol):
    """The interface every kind module implements (module attributes and functions)."""

    CONTROL: str
    RESULT_TYPE: str
    TASKS: tuple[str, ...]
    METRIC: str

    def to_value(self, det: Detection, width: int, height: int) -> dict[str, Any]: ...

    def to_line(self, region: dict[str, Any], class_id: int) -> str | None: ...

    def from_yolo(self, label: YoloBox, width: int, height: int) -> dict[str, Any]: ...


# The registry: one line per kind. Where two kinds share a control (oriented boxes share
# RectangleLabels), the first one is the default and ``task`` picks the other.
KINDS: tuple[Kind, ...] = (boxes, outlines, oriented_boxes)

CONTROLS: dict[str, str] = {kind.CONTROL: kind.RESULT_TYPE for kind in KINDS}  # tag -> result type
RESULT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(kind.RESULT_TYPE for kind in KINDS))
SERVING_TASKS: tuple[str, ...] = tuple(dict.fromkeys(task for kind in KINDS for task in kind.TASKS))


class UnknownKind(ValueError):
    """No registered kind handles a control tag or result type."""


def for_control(tag: str, task: str | None = None) -> Kind:
    """The kind of a label-config tag (``RectangleLabels`` -> boxes); ``task`` prefers a kind that task serves."""
    return _find("CONTROL", tag, task, f"control <{tag}>", ", ".join(f"<{t}>" for t in CONTROLS))


def for_result(result_type: str, task: str | None = None) -> Kind:
    """The kind of a result ``type`` (``polygonlabels`` -> outlines); ``task`` as in ``for_control``."""
    return _find("RESULT_TYPE", result_type, task, f"result type {result_type!r}", ", ".join(RESULT_TYPES))


def _find(attribute: str, name: str, task: str | None, what: str, known: str) -> Kind:
    matching = [kind for kind in KINDS if getattr(kind, attribute) == name]
    if not matching:
        raise UnknownKind(f"no kind handles {what} (known: {known}): use one of those, or add a module "
                          "under yolo_backend/kinds/ and a line to KINDS")
    return next((kind for kind in matching if task in kind.TASKS), matching[0])


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


def detections_to_regions(detections: Iterable[Detection], targets: Iterable[Target], width: int, height: int
                          ) -> list[dict[str, Any]]:
    """Every detection whose class maps to a label and whose score passes, for every target."""
    regions: list[dict[str, Any]] = []
    detections = list(detections)
    for target in targets:
        for index, det in enumerate(detections):
            if det.class_id in target.labels and det.score >= target.threshold_for(det.class_id):
                regions.append(detection_to_region(det, target, width, height, index))
    return regions


# -- YOLO label line -> Label Studio (import) -----------------------------------------------------
def label_to_region(label: YoloBox, name: str, result_type: str, *, from_name: str, to_name: str,
                    size: tuple[int, int], region_id: str, score: float | None = None, task: str | None = None
                    ) -> dict[str, Any]:
    """One parsed YOLO label line, class ``name``, as a Label Studio region of ``result_type`` (``task``: obb)."""
    kind = for_result(result_type, task)
    return convert.region(kind.from_yolo(label, *size), name, result_type=kind.RESULT_TYPE, from_name=from_name,
                          to_name=to_name, size=size, region_id=region_id, score=score)


# -- Label Studio -> YOLO label lines (training and export) -------------------------------------
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
                     to_name: str | None = None, task: str | None = None) -> list[str]:
    """The label file of one annotation: a row per region of the control (every control when None)."""
    lines = []
    for region in annotation.get("result") or []:
        if (from_name and region.get("from_name") != from_name) or (to_name and region.get("to_name") != to_name):
            continue
        line = region_line(region, class_ids, task)
        if line is not None:
            lines.append(line)
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
