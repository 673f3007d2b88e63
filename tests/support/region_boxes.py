"""A region's YOLO box, for tests that compare Label Studio regions with label files by their boxes."""

from __future__ import annotations

from typing import Any

from yolo_backend import kinds
from yolo_backend.formats import convert
from yolo_backend.formats.convert import YoloBox


def region_box(region: dict[str, Any], class_ids: dict[str, int]) -> YoloBox | None:
    """The box of the region's label row (an outline's row by its bounding box); None when it trains nothing."""
    line = kinds.region_line(region, class_ids)
    if line is None:
        return None
    box = convert.parse_yolo_line(line)
    return YoloBox(box.class_id, box.cx, box.cy, box.w, box.h)
