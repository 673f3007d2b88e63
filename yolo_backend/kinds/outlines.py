"""Outlines: ``<PolygonLabels>`` regions, a segment checkpoint's mask outline, else the box as 4 points.

Label Studio value: ``points`` ``[[x, y], ...]`` in percent of the displayed image,
``closed``. YOLO row: the segment line ``c x1 y1 ... xn yn`` (relative), which segment
training needs and detect training reads as the outline's bounding box.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..formats import convert
from ..formats import overlap as geometry
from ..formats.convert import Detection, YoloBox
from .base import Kind, Pair

MIN_POINTS = 3  # fewer is no area, and a 2-point row would read as a box


class Outlines(Kind):
    """Polygons: scored by the IoU of the outlines, not of their bounding boxes."""

    CONTROL = "PolygonLabels"
    RESULT_TYPE = "polygonlabels"
    TASKS = ("segment", "detect")  # a segment model's ``Results.masks.xy``; a detect model's box as 4 points
    TRAIN_TASK = "segment"  # what its datasets train

    def to_value(self, det: Detection, width: int, height: int) -> dict[str, Any]:
        """Model output -> Label Studio value: the mask outline when there is one, else the box's 4 corners."""
        if det.polygon and len(det.polygon) >= MIN_POINTS:
            points = convert.percent_points(det.polygon, width, height)
        else:
            points = convert.box_polygon(*convert.pixels_to_percent_box(det.box, width, height))
        return {"points": points, "closed": True}

    def to_line(self, region: dict[str, Any], class_id: int) -> str | None:
        """Label Studio region -> ``c x1 y1 ... xn yn``, points clipped to the image; None without an area."""
        try:
            points = [(convert.clip(float(x)), convert.clip(float(y)))
                      for x, y in (region.get("value") or {})["points"]]
        except (KeyError, TypeError, ValueError):  # no points, or a point that is not [x, y] numbers
            return None
        if len(points) < MIN_POINTS or convert.clipped_box(*convert.points_bounds(points)) is None:
            return None
        return convert.format_points_line(class_id, ((x / 100, y / 100) for x, y in points))

    def from_yolo(self, label: YoloBox, width: int, height: int) -> dict[str, Any]:
        """YOLO label line (parsed) -> Label Studio value: a segment line's own points, a box row's 4 corners."""
        if label.points and len(label.points) >= MIN_POINTS:
            points = convert.percent_points(label.points, 1, 1)
        else:
            points = convert.box_polygon(*convert.yolo_to_percent(label))
        return {"points": points, "closed": True}

    def shape(self, det: Detection) -> tuple[tuple[float, float], ...] | None:
        """What the holdout scoring compares: the mask outline (pixels)."""
        return det.polygon

    def overlap(self, found: Sequence[Pair], truths: Sequence[Pair]) -> np.ndarray:
        """IoU of the outlines, not of their bounding boxes."""
        return geometry.outline_iou(found, truths)


KIND = Outlines()
