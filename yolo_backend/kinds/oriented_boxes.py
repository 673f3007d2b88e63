"""Oriented boxes: ``<RectangleLabels>`` regions with a rotation, from an ``obb`` checkpoint.

The same control and result type as boxes, so which kind serves a control follows from the
checkpoint's task (an ``obb`` checkpoint serves oriented boxes) or from the control's
``model_obb="true"`` attribute, which demands one (``label_config``).

Label Studio value: ``x, y`` the top-left corner *before* rotation and ``width, height``,
in percent of the displayed image (width of its width, height of its height), and
``rotation`` in degrees, clockwise, about that corner. Rotation happens in pixels (percent
axes are not isotropic), so every conversion needs the displayed size.

YOLO row: ``c x1 y1 x2 y2 x3 y3 x4 y4``, the 4 corners relative to the displayed image.

Canonical form, as Ultralytics' ``regularize_rboxes``: a rectangle has 4 (corner, angle)
descriptions; we always give the one with ``rotation`` in [0, 90), so the same rectangle
reads the same whatever corner order or angle it came with.

Clip policy: a value is kept whole (clipping a rotated rectangle's corners would make it
no rectangle, and Label Studio shows one that pokes out of the image as it is); a YOLO row
for training has its corners clipped to the image, since Ultralytics rejects coordinates
past 0..1 and takes the smallest rotated rectangle around what is left.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from label_studio_sdk.converter.utils import convert_annotation_to_yolo_obb

from ..formats import convert
from ..formats import overlap as geometry
from ..formats.convert import Detection, YoloBox
from .base import Pair
from .boxes import Boxes

FORCE_ATTRIBUTE = "model_obb"  # <RectangleLabels model_obb="true">: only an obb checkpoint may serve it

Point = tuple[float, float]


class OrientedBoxes(Boxes):
    """Boxes with their own geometry: the same control and result type, an obb checkpoint's rotated rectangles."""

    TASKS = ("obb",)  # ``Results.obb``
    TRAIN_TASK = "obb"  # what its datasets train

    def to_value(self, det: Detection, width: int, height: int) -> dict[str, Any]:
        """Model output (4 corners in pixels of the displayed image) -> Label Studio value."""
        corners = det.corners or _box_corners(det.box)
        return value_from_corners(corners, width, height)

    def to_line(self, region: dict[str, Any], class_id: int) -> str | None:
        """Label Studio region -> ``c x1 y1 ... x4 y4``, corners clipped to the image; None without an area."""
        value = region.get("value") or {}
        try:
            label = {k: float(value[k]) for k in ("x", "y", "width", "height")}
            label["rotation"] = float(value.get("rotation") or 0)
            label["original_width"] = float(region.get("original_width") or 100)
            label["original_height"] = float(region.get("original_height") or 100)
        except (KeyError, TypeError, ValueError):  # not a rectangle's value
            return None
        corners = [(convert.clip(x, 0, 1), convert.clip(y, 0, 1)) for x, y in convert_annotation_to_yolo_obb(label)]
        if _area(corners) <= 1e-10:
            return None
        return convert.format_points_line(class_id, corners)

    def from_yolo(self, label: YoloBox, width: int, height: int) -> dict[str, Any]:
        """YOLO row (parsed; 4 relative corners, or a box row) -> Label Studio value on a ``width x height`` image."""
        if label.points and len(label.points) == 4:
            corners: Sequence[Point] = [(x * width, y * height) for x, y in label.points]
        else:
            box = label.cx - label.w / 2, label.cy - label.h / 2, label.cx + label.w / 2, label.cy + label.h / 2
            corners = _box_corners((box[0] * width, box[1] * height, box[2] * width, box[3] * height))
        return value_from_corners(corners, width, height)

    def shape(self, det: Detection) -> tuple[tuple[float, float], ...] | None:
        """What the holdout scoring compares: the 4 corners (pixels)."""
        return det.corners

    def overlap(self, found: Sequence[Pair], truths: Sequence[Pair]) -> np.ndarray:
        """IoU of the rotated rectangles, not of their bounding boxes."""
        return geometry.outline_iou(found, truths)


KIND = OrientedBoxes()


def value_from_corners(corners: Sequence[Point], width: float, height: float) -> dict[str, Any]:
    """4 corners in pixels, in either winding from any corner -> the canonical Label Studio value.

    A slightly skewed quadrilateral (rounded label rows, a hand-made file) reads as the
    rectangle closest to it: sides are the means of opposite sides, and the angle comes from
    all four sides weighted by length, so a thin box's short sides cannot tilt it.
    """
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = corners
    cx, cy = (x0 + x1 + x2 + x3) / 4, (y0 + y1 + y2 + y3) / 4
    ux, uy = (x1 - x0) + (x2 - x3), (y1 - y0) + (y2 - y3)  # twice side a, along edge 0 -> 1
    vx, vy = (x2 - x1) + (x3 - x0), (y2 - y1) + (y3 - y0)  # twice side b
    turn = 1 if ux * vy - uy * vx >= 0 else -1  # winding: b turned back onto a's direction
    side_a, side_b = math.hypot(ux, uy) / 2, math.hypot(vx, vy) / 2
    direction = math.degrees(math.atan2(uy - turn * vx, ux + turn * vy))
    # rotation rounded first, so the origin is computed with the angle Label Studio will apply
    degrees = convert.pct(direction) % 180
    if degrees >= 90:  # the other side is the one in [0, 90) degrees
        degrees, side_a, side_b = convert.pct(degrees - 90), side_b, side_a
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    left = cx - (side_a / 2 * cos - side_b / 2 * sin)  # centre minus the rotated half-diagonal
    top = cy - (side_a / 2 * sin + side_b / 2 * cos)
    return {"x": convert.pct(left / width * 100), "y": convert.pct(top / height * 100),
            "width": convert.pct(side_a / width * 100), "height": convert.pct(side_b / height * 100),
            "rotation": abs(degrees)}


def value_corners(value: dict[str, Any], width: float, height: float) -> list[Point]:
    """The 4 corners of a Label Studio value in pixels, clockwise from its origin (top-left before rotation)."""
    percent = convert.rotated_corners(float(value["x"]), float(value["y"]), float(value["width"]),
                                      float(value["height"]), float(value.get("rotation") or 0), width, height)
    return [(x / 100 * width, y / 100 * height) for x, y in percent]


def _box_corners(box: Sequence[float]) -> list[Point]:
    x1, y1, x2, y2 = box
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


def _area(points: Sequence[Point]) -> float:
    """Shoelace area of a polygon (relative units)."""
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, [*points[1:], points[0]]))) / 2
