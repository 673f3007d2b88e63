"""Keypoints: ``<KeyPointLabels>`` regions, each label a keypoint index of a pose checkpoint.

A pose instance is several regions, one per point, so this kind works a whole image at a
time (the ``results``, ``label_rows`` and ``import_regions`` hooks); the per-region
``to_value``/``to_line``/``from_yolo`` only say so.

Label Studio value: ``x, y`` the point in percent of the displayed image, ``width`` its
drawn size in percent of the image width, ``keypointlabels: [label]``. With a
``<RectangleLabels>`` control on the same image and checkpoint (``box_control``), each
point carries ``parentID``: the id of its instance's box region, so Label Studio nests it.

YOLO row: ``c cx cy w h x1 y1 v1 ... xk yk vk`` relative to the displayed image; ``v`` is
2 for a labeled point, and a missing point is ``0 0 0``.

Attributes, as in Label Studio's own YOLO example:

- ``<Label model_index="N">``: the keypoint index the label names (default: its position
  in the control); ``<Label predicted_values="person">``: the model classes whose instances
  give points (default: every class). The instance classes of a dataset are the distinct
  ``predicted_values`` of the labels, else one class named after the control (every model
  class then counts as it);
- ``model_point_threshold``: the least keypoint confidence shown (default 0);
  ``model_point_size``: a point's width in pixels (default 1); ``model_score_threshold``:
  the instance score, as for boxes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import LabelConfigError
from ..formats import convert
from ..formats import overlap as geometry
from ..formats.controls import ControlSpec
from ..formats.convert import Detection, Place, Target, YoloBox
from .base import Box, Pair, WholeImageKind

INDEX = "model_index"
POINT_THRESHOLD = "model_point_threshold"
POINT_SIZE = "model_point_size"
BOX_TYPE = "rectanglelabels"
PAD = 0.1  # an instance without a box: its points' bounds grown by this share of their larger side...
MIN_PAD = 0.005  # ...and at least this share of the image, so a single point still has an area
EDGE = 0.01  # percent: a point on its box's edge stays inside although both were rounded
SIDES = (("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT"))
# OKS's object area is COCO's segment area; with boxes only, Ultralytics' PoseValidator takes this share
# of the box (a person's outline fills about 53 % of its box), and so do we, to score as `yolo val` does
BOX_AREA_SHARE = 0.53
Labels = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


# -- keypoint index <-> label ---------------------------------------------------------------------
def keypoint_labels(label_options: Labels, labels: Sequence[str] = ()) -> dict[int, str]:
    """Keypoint index -> label: a label's ``model_index``, else its position among ``labels`` (control order)."""
    options = dict(label_options)
    order = list(labels) or [label for label, _ in label_options]
    out: dict[int, str] = {}
    for position, label in enumerate(order):
        raw = dict(options.get(label, ())).get(INDEX)
        try:
            index = int(raw) if raw not in (None, "") else position
        except ValueError:
            raise LabelConfigError(f'{INDEX}="{raw}" on label {label!r} is not a whole number: give the keypoint '
                                   "index of the pose model (0 for its first point)") from None
        out.setdefault(index, label)
    return out


def _indexes(spec: ControlSpec) -> dict[str, int]:
    return {label: index for index, label in keypoint_labels(spec.label_options, spec.labels).items()}


def keypoint_count(spec: ControlSpec) -> int:
    """k of ``kpt_shape``: one past the highest keypoint index the labels name."""
    return max(keypoint_labels(spec.label_options, spec.labels), default=-1) + 1


# -- the control's attributes ------------------------------------------------------------------
def _number(raw: str | None, default: float, name: str) -> float:
    try:
        return float(raw) if raw not in (None, "") else default
    except ValueError:
        raise LabelConfigError(f'{name}="{raw}" on a <KeyPointLabels> control is not a number') from None


def _mirrored(label: str) -> str:
    """``left_eye`` -> ``right_eye``, ``top-right`` -> ``top-left``; a label naming no side is itself."""
    for left, right in SIDES:
        if left in label:
            return label.replace(left, right)
        if right in label:
            return label.replace(right, left)
    return label


# -- Label Studio -> YOLO label rows: grouping points into instances ------------------------------
def _xy(point: dict[str, Any]) -> tuple[float, float] | None:
    value = point.get("value") or {}
    try:
        return float(value["x"]), float(value["y"])
    except (KeyError, TypeError, ValueError):
        return None


def _box_bounds(box: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """A rectangle region's percent box (a rotated one by its bounds), clipped; None without area."""
    value = box.get("value") or {}
    try:
        x, y, w, h = (float(value[key]) for key in ("x", "y", "width", "height"))
        degrees = float(value.get("rotation") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    if degrees:
        size = float(box.get("original_width") or 100), float(box.get("original_height") or 100)
        x, y, w, h = convert.points_bounds(convert.rotated_corners(x, y, w, h, degrees, *size))
    return convert.clipped_box(x, y, w, h)


def _owner(point: dict[str, Any], boxes: Sequence[dict[str, Any]]) -> int | None:
    """The index of the box ``point`` belongs to: its parent, else the smallest holding it."""
    parent = point.get("parentID")
    for i, box in enumerate(boxes):
        if parent is not None and box.get("id") == parent:
            return i
    xy = _xy(point)
    holding = []
    for i, box in enumerate(boxes):
        bounds = _box_bounds(box)
        if xy is not None and bounds is not None and bounds[0] - EDGE <= xy[0] <= bounds[0] + bounds[2] + EDGE \
                and bounds[1] - EDGE <= xy[1] <= bounds[1] + bounds[3] + EDGE:
            holding.append((bounds[2] * bounds[3], i))
    return min(holding)[1] if holding else None


def _padded(points: Sequence[dict[str, Any]]) -> tuple[float, float, float, float] | None:
    """Percent bounds of points, grown by ``PAD`` of their larger side (at least ``MIN_PAD`` of the image)."""
    xys = [xy for xy in map(_xy, points) if xy is not None]
    if not xys:
        return None
    x, y, w, h = convert.points_bounds(xys)
    pad = max(PAD * max(w, h), MIN_PAD * 100)
    return convert.clipped_box(x - pad, y - pad, w + 2 * pad, h + 2 * pad)


def _row(cls: int, bounds: tuple[float, float, float, float] | None, points: Sequence[dict[str, Any]],
         indexes: Mapping[str, int], k: int) -> str | None:
    """``c cx cy w h`` + k times ``x y v``; None without a box."""
    if bounds is None:
        return None
    slots: list[tuple[float, float, int] | None] = [None] * k
    for point in points:
        index, xy = indexes.get(convert.region_label(point, Keypoints.RESULT_TYPE) or ""), _xy(point)
        if index is not None and xy is not None and index < k and slots[index] is None:
            slots[index] = (convert.clip(xy[0]) / 100, convert.clip(xy[1]) / 100, 2)
    box = convert.format_yolo_line(convert.percent_to_yolo(cls, *bounds))
    return box + "".join(f" {x:.6f} {y:.6f} {v}" for x, y, v in (s or (0.0, 0.0, 0) for s in slots))


# -- YOLO label rows -> Label Studio (import) -----------------------------------------------------
def parse_row(row: str, k: int | None = None) -> tuple[int, tuple[float, float, float, float], np.ndarray]:
    """``c cx cy w h x1 y1 [v1] ...`` -> (class, relative box, (k, 3) points); 2-number points get v=2.

    ``k`` (the keypoint count, when known) tells ``x y`` points from ``x y v`` ones where
    both fit; otherwise ``x y v`` is taken when the count divides by 3.
    """
    parts = row.split()
    if len(parts) < 5:
        raise ValueError(f"expected a pose row 'class cx cy w h x1 y1 v1 ...', got {row.strip()!r}")
    numbers = [float(p) for p in parts[1:]]
    rest = numbers[4:]
    dims = len(rest) // k if k and len(rest) in (2 * k, 3 * k) else 3 if len(rest) % 3 == 0 else 2
    if len(rest) % dims:
        raise ValueError(f"a pose row needs 'x y v' (or 'x y') per keypoint after the box, got {len(rest)} numbers")
    points = np.array(rest, float).reshape(-1, dims)
    if dims == 2:
        points = np.hstack([points, np.where((points != 0).any(1), 2.0, 0.0)[:, None]])
    return int(float(parts[0])), (numbers[0], numbers[1], numbers[2], numbers[3]), points


# -- the kind: a pose instance is several regions, so it reads and writes whole images ---------------
class Keypoints(WholeImageKind):
    """Pose keypoints: a region per point, a row per instance, scored by OKS."""

    CONTROL = "KeyPointLabels"
    RESULT_TYPE = "keypointlabels"
    TASKS = ("pose",)
    TRAIN_TASK = "pose"

    # -- model output -> Label Studio ----------------------------------------------------------------
    def results(self, detections: Sequence[Detection], target: Target, width: int, height: int
                ) -> list[dict[str, Any]]:
        """A region per point of each instance whose class maps and whose score passes.

        Points whose confidence is below ``model_point_threshold``, or whose index no label
        names, are left out. Ids are stable: the control, the instance's position and box, the
        point's index; ``parentID`` is the box region the boxes kind gives the same instance.
        """
        spec = target.spec
        names = keypoint_labels(spec.label_options)
        least = _number(spec.option(POINT_THRESHOLD), 0.0, POINT_THRESHOLD)
        value_width = convert.pct(_number(spec.option(POINT_SIZE), 1.0, POINT_SIZE) / width * 100)
        regions: list[dict[str, Any]] = []
        for position, det in enumerate(detections):
            if det.class_id not in target.labels or det.score < target.threshold_for(det.class_id) \
                    or not det.keypoints:
                continue
            parent = convert.region_id(spec.box_control, position, det.box) if spec.box_control else None
            for index, (x, y, confidence) in enumerate(det.keypoints):
                if index not in names or confidence < least:
                    continue
                value = {"x": convert.pct(convert.clip(x / width * 100)),
                         "y": convert.pct(convert.clip(y / height * 100)), "width": value_width}
                region = convert.region(value, names[index], result_type=self.RESULT_TYPE, from_name=spec.from_name,
                                        to_name=spec.to_name, size=(width, height),
                                        region_id=convert.region_id(spec.from_name, position, index, det.box),
                                        score=det.score)
                if parent:
                    region["parentID"] = parent
                regions.append(region)
        return regions

    def class_labels(self, spec: ControlSpec, names: Mapping[int, str]) -> dict[int, str]:
        """Model class id -> instance class (``train_classes``): the classes ``predicted_values`` names, by name.

        Without ``predicted_values`` every class gives points, as the one class named after the
        control: a base model and a version trained on the project are scored alike.
        """
        wanted = {name for _, values in spec.predicted_values for name in values}
        if not wanted:
            return {int(cls): spec.from_name for cls in names}
        return {int(cls): str(name) for cls, name in names.items() if name in wanted}

    # -- training: classes and data.yaml -------------------------------------------------------------
    def train_classes(self, spec: ControlSpec) -> list[str]:
        """Instance classes: the distinct ``predicted_values`` in label order, else one named after the control."""
        named = [name for _, values in spec.predicted_values for name in values]
        return list(dict.fromkeys(named)) or [spec.from_name]

    def dataset_fields(self, spec: ControlSpec) -> dict[str, Any]:
        """``kpt_shape`` [k, 3], ``flip_idx`` (a left label swaps with its right twin) and ``kpt_names``."""
        names = keypoint_labels(spec.label_options, spec.labels)
        k = keypoint_count(spec)
        by_name = {label: index for index, label in names.items()}
        flip = [by_name.get(_mirrored(names[i]), i) if i in names else i for i in range(k)]
        ordered = [names.get(i, str(i)) for i in range(k)]
        return {"kpt_shape": [k, 3], "flip_idx": flip,
                "kpt_names": {cls: ordered for cls in range(len(self.train_classes(spec)))}}

    # -- Label Studio -> YOLO label rows (training and export) ---------------------------------------
    def label_rows(self, regions: Sequence[dict[str, Any]], class_ids: Mapping[str, int], spec: ControlSpec
                   ) -> list[str]:
        """One annotation's pose rows: this control's points grouped into instances.

        A point belongs to the rectangle its ``parentID`` names, else to the smallest one holding
        it, else to one instance of all such loose points; the rectangles are ``box_control``'s
        (any rectangle on the image when there is none). An instance's box is its rectangle,
        else its points' bounds padded. Its class is the rectangle's label when that is a class,
        else the first class. Of two points of one index in one instance the first counts.
        """
        if not class_ids:
            return []
        points = [r for r in regions if r.get("type") == self.RESULT_TYPE and r.get("from_name") == spec.from_name
                  and r.get("to_name") == spec.to_name]
        boxes = [r for r in regions if r.get("type") == BOX_TYPE and r.get("to_name") == spec.to_name
                 and (spec.box_control is None or r.get("from_name") == spec.box_control)]
        indexes, k = _indexes(spec), keypoint_count(spec)
        groups: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(boxes))}
        loose: list[dict[str, Any]] = []
        for point in points:
            owner = _owner(point, boxes)
            (groups[owner] if owner is not None else loose).append(point)
        first = min(class_ids.values())
        rows = []
        for i, box in enumerate(boxes):
            bounds = _box_bounds(box)
            if bounds is None:  # a box without area: its points still count, as loose ones
                loose += groups[i]
                continue
            rows.append(_row(class_ids.get(convert.region_label(box, BOX_TYPE) or "", first), bounds, groups[i],
                             indexes, k))
        if loose:
            rows.append(_row(first, _padded(loose), loose, indexes, k))
        return [row for row in rows if row is not None]

    # -- YOLO label rows -> Label Studio (import) ----------------------------------------------------
    def import_regions(self, rows: Sequence[str], names: Mapping[int, str], place: Place) -> list[dict[str, Any]]:
        """One image's pose rows -> a keypoint region per labeled point (v > 0), named by ``place.keypoint_names``.

        No box region is made: ``Place`` names no rectangle control to put it in; a project
        with one gets its boxes from the model, and training pads the points' bounds.
        """
        width, height = place.size
        k = len(place.keypoint_names) or None
        regions = []
        for position, row in enumerate(rows):
            cls, _, points = parse_row(row, k)
            if cls not in names:
                raise ValueError(f"class {cls} has no name (known: {sorted(names)}): fix the label or add the name "
                                 "to data.yaml / classes.txt / --classes")
            for index, (x, y, v) in enumerate(points):
                if v <= 0:
                    continue
                label = place.keypoint_names[index] if index < len(place.keypoint_names) else str(index)
                value = {"x": convert.pct(convert.clip(x * 100)), "y": convert.pct(convert.clip(y * 100)),
                         "width": convert.pct(100 / width)}
                regions.append(convert.region(value, label, result_type=self.RESULT_TYPE, from_name=place.from_name,
                                              to_name=place.to_name, size=(width, height),
                                              region_id=convert.region_id(place.seed, position, index)))
        return regions

    # -- holdout scoring -----------------------------------------------------------------------------
    def truth(self, row: str, width: int, height: int) -> tuple[int, Box, np.ndarray]:
        """A pose row as (class, pixel box, (k, 3) pixel points with visibility)."""
        cls, (cx, cy, w, h), points = parse_row(row)
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        return cls, box, points * np.array([width, height, 1.0])

    def shape(self, det: Detection) -> np.ndarray | None:
        """A detection's (k, 2) pixel keypoints."""
        return None if not det.keypoints else np.array([(x, y) for x, y, _ in det.keypoints], float)

    def overlap(self, found: Sequence[Pair], truths: Sequence[Pair]) -> np.ndarray:
        """OKS of every (box, points) found with every truth, as ``yolo val`` scores pose models.

        Area = the truth's box area x ``BOX_AREA_SHARE`` and sigmas as ``overlap.keypoint_similarity``
        picks them, both as Ultralytics' PoseValidator does, so mAP50-95 (OKS) reads like its own.
        Found points are cut or padded (far away) to the truth's k; a detection without points matches none.
        """
        if not found or not truths:
            return np.zeros((len(found), len(truths)))
        k = max(len(points) for _, points in truths)
        far = np.full((k, 2), 1e9)
        ours = np.stack([far if points is None else np.vstack([np.asarray(points, float)[:k, :2], far])[:k]
                         for _, points in found])
        theirs = np.stack([np.vstack([np.asarray(points, float), np.zeros((k, 3))])[:k] for _, points in truths])
        areas = np.array([max(b[2] - b[0], 0) * max(b[3] - b[1], 0) for b, _ in truths], float) * BOX_AREA_SHARE
        return geometry.keypoint_similarity(ours, theirs, areas)

    # -- the per-region functions: a keypoint instance is never one region ---------------------------
    def to_value(self, det: Detection, width: int, height: int) -> dict[str, Any]:
        """Not used: ``results`` writes a region per point."""
        raise NotImplementedError("keypoints are written a whole instance at a time: use its results")

    def to_line(self, region: dict[str, Any], class_id: int) -> str | None:
        """None: one point is no pose row (``label_rows`` groups points into instances)."""
        return None

    def from_yolo(self, label: YoloBox, width: int, height: int) -> dict[str, Any]:
        """Not used: ``import_regions`` reads the raw rows, which ``convert.parse_yolo_line`` would misread."""
        raise NotImplementedError("pose rows are imported a whole image at a time: use its import_regions")


KIND = Keypoints()
