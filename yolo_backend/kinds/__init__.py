"""One module per kind of Label Studio region, and the registry that finds them.

A kind holds its whole data path, as Ultralytics keeps one ``Results`` class per output
kind and one label format per task. Prediction (``serving/backend.py``), training
(``training/dataset.py``, ``training/fitting.py``), import (``ls_tasks``) and export
(``yolo_export``) all go through it, so adding a kind is one new module here and one line
in ``REGISTRY``.

Each module holds one subclass of ``base.Kind`` (its contract: class attributes, per-region
conversions, and the hooks with their defaults) and its instance ``KIND``; callers call its
methods (``kind.train_classes(spec)``, ``kind.overlap(found, truths)``). The functions here
find a kind (``for_control``, ``for_result``, ``serving_kind``) and apply one to whole
annotations and model outputs; labels, ids, scores and the displayed size go into one
envelope (``convert.region``), the same for every kind.

Two kinds may share a control and result type (boxes and oriented boxes share
``RectangleLabels``): the first in ``REGISTRY`` is the default, and the serving checkpoint's
task (``detect``/``obb``) picks the other (``_find``, the one place that rule lives).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..formats import convert
from ..formats.controls import ControlSpec
from ..formats.convert import Detection, Target, YoloBox
from . import boxes, classes, keypoints, masks, oriented_boxes, outlines, video_boxes
from .base import Kind, WholeImageKind

__all__ = ["Kind", "WholeImageKind"]  # the contract, re-exported for callers that type a kind

# The registry: one line per kind, as Ultralytics' ``task_map`` lists its variants. Where two kinds
# share a control (oriented boxes share RectangleLabels), the first one is the default and the task
# picks the other.
REGISTRY: tuple[Kind, ...] = (
    boxes.KIND,
    outlines.KIND,
    oriented_boxes.KIND,
    masks.KIND,
    keypoints.KIND,
    classes.KIND,
    video_boxes.KIND,  # a whole track per region: found by tag and result type, never on the per-image paths
)
# Image kinds: the per-image paths (import, export, region rows) see only these.
KINDS: tuple[Kind, ...] = tuple(kind for kind in REGISTRY if kind.MEDIA == "image")

CONTROLS: dict[str, str] = {kind.CONTROL: kind.RESULT_TYPE for kind in KINDS}  # tag -> result type
RESULT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(kind.RESULT_TYPE for kind in KINDS))
SERVING_TASKS: tuple[str, ...] = tuple(dict.fromkeys(task for kind in KINDS for task in kind.TASKS))
TaskHint = str | Callable[[], str | None] | None  # a task, or a way to ask one (a checkpoint's: it may load it)


class UnknownKind(ValueError):
    """No registered kind handles a control tag or result type."""


def for_control(tag: str, task: TaskHint = None) -> Kind:
    """The kind of a label-config tag (``RectangleLabels`` -> boxes); ``task`` prefers a kind that task serves."""
    return _find(lambda kind: tag == kind.CONTROL, task, f"control <{tag}>", ", ".join(f"<{t}>" for t in CONTROLS))


def for_result(result_type: str, task: TaskHint = None) -> Kind:
    """The kind of a result ``type`` (``polygonlabels`` -> outlines); ``task`` as in ``for_control``."""
    return _find(lambda kind: result_type == kind.RESULT_TYPE, task, f"result type {result_type!r}",
                 ", ".join(RESULT_TYPES))


def _find(matches: Callable[[Kind], bool], task: TaskHint, what: str, known: str) -> Kind:
    """The registered kind ``matches`` picks; of several sharing a control, the one ``task`` serves, else the first.

    A callable ``task`` is asked only when several share it: a training run reads its served
    checkpoint's task (which loads the checkpoint) for ``RectangleLabels`` alone.
    """
    matching = [kind for kind in REGISTRY if matches(kind)]
    if not matching:
        raise UnknownKind(f"no kind handles {what} (known: {known}): use one of those, or add a module "
                          "under yolo_backend/kinds/ and a line to REGISTRY")
    if len(matching) == 1:
        return matching[0]
    wanted = task() if callable(task) else task
    return next((kind for kind in matching if wanted in kind.TASKS), matching[0])


def refusal(spec: ControlSpec) -> str | None:
    """Why no checkpoint can serve or train ``spec`` (its kind's ``refusal``; None: nothing against it)."""
    try:
        kind = for_result(spec.kind)
    except UnknownKind:
        return None
    return kind.refusal(spec)


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
    return for_result(target.spec.kind, target.task).region(det, target, width, height, index)


def detections_to_regions(detections: Iterable[Detection], targets: Iterable[Target], width: int, height: int
                          ) -> list[dict[str, Any]]:
    """Every region the model's output gives, for every target, by its kind's ``results``."""
    regions: list[dict[str, Any]] = []
    detections = list(detections)
    for target in targets:
        regions += for_result(target.spec.kind, target.task).results(detections, target, width, height)
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

    With ``spec``, a ``WholeImageKind`` writes the rows from the whole annotation (keypoints
    group into instances by their boxes, choices name the image's class).
    """
    everything = [region for region in annotation.get("result") or [] if isinstance(region, dict)]
    if spec is not None:
        kind = for_result(spec.kind, task or spec.task)
        if isinstance(kind, WholeImageKind):  # it reads its own control's regions, and its companions' (boxes)
            return kind.label_rows(everything, class_ids, spec)
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
