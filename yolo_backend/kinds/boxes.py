"""Boxes: ``<RectangleLabels>`` regions, from a detect or segment checkpoint's boxes.

Label Studio value: ``x, y, width, height`` (percent of the displayed image, ``x, y`` the
top-left corner) and ``rotation`` in degrees about that corner. YOLO row: ``c cx cy w h``
relative to the displayed image; a rotated rectangle trains as its axis-aligned bounding
box (``oriented_boxes`` keeps the angle, for an obb checkpoint).
"""

from __future__ import annotations

from typing import Any

from ..formats import convert
from ..formats.convert import Detection, YoloBox
from .base import Kind


class Boxes(Kind):
    """Axis-aligned boxes; the hooks' defaults (``base.Kind``) are theirs."""

    CONTROL = "RectangleLabels"
    RESULT_TYPE = "rectanglelabels"
    TASKS = ("detect", "segment", "pose")  # all give boxes (``Results.boxes``)
    TRAIN_TASK = "detect"  # what its datasets train

    def to_value(self, det: Detection, width: int, height: int) -> dict[str, Any]:
        """Model output (pixels of the displayed image) -> Label Studio value."""
        x, y, w, h = convert.pixels_to_percent_box(det.box, width, height)
        return {"x": x, "y": y, "width": w, "height": h, "rotation": 0}

    def to_line(self, region: dict[str, Any], class_id: int) -> str | None:
        """Label Studio region -> ``c cx cy w h``, clipped to the image; None when nothing is left of it."""
        value = region.get("value") or {}
        try:
            x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
            degrees = float(value.get("rotation") or 0)
        except (KeyError, TypeError, ValueError):  # not a rectangle's value
            return None
        if degrees:
            size = float(region.get("original_width") or 100), float(region.get("original_height") or 100)
            x, y, w, h = convert.points_bounds(convert.rotated_corners(x, y, w, h, degrees, *size))
        box = convert.clipped_box(x, y, w, h)
        return None if box is None else convert.format_yolo_line(convert.percent_to_yolo(class_id, *box))

    def from_yolo(self, label: YoloBox, width: int, height: int) -> dict[str, Any]:
        """YOLO label line (parsed; a segment line by its box) -> Label Studio value."""
        x, y, w, h = convert.yolo_to_percent(label)
        return {"x": x, "y": y, "width": w, "height": h, "rotation": 0}


KIND = Boxes()
