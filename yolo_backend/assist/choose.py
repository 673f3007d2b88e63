"""Without a segment-anything model: which of the served checkpoint's detections a click or box means.

A point means the object it lies on: a detection whose mask outline holds it (a segment
model), else whose box holds it; of several, the best scored (a smaller one on a tie). A
negative point rules out every detection holding it. A point on background, inside no
detection, means nothing: the annotator gets no region rather than a neighbour's.

A box means the object it was drawn around: of the detections lying mostly inside it, the one
that best fills it (IoU with the drawn box, times its score). The detections come from the
image cut around the box (``crop``) at the model's input size, so an object small in a large
image is seen at full resolution, never upscaled beyond it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..formats import overlap
from ..formats.convert import Detection

INSIDE = 0.5  # of a detection's box that must lie inside the drawn box for it to be a candidate
MIN_FIT = 0.1  # IoU with the drawn box below which no detection is taken for the object


def holds(det: Detection, x: float, y: float) -> bool:
    """Whether a detection covers pixel ``(x, y)``: its mask outline when it has one, else its box."""
    x1, y1, x2, y2 = det.box
    if not (x1 <= x <= x2 and y1 <= y <= y2):
        return False
    if det.polygon and len(det.polygon) >= 3:
        import cv2

        outline = np.asarray(det.polygon, np.float32).reshape(-1, 1, 2)
        return cv2.pointPolygonTest(outline, (float(x), float(y)), True) >= -1.0  # its border pixels count
    return True


def at_points(detections: Sequence[Detection], points: Sequence[tuple[float, float, bool]]) -> Detection | None:
    """The detection every positive point lies on and no negative one does; the best scored of several."""
    positive = [(x, y) for x, y, keep in points if keep]
    negative = [(x, y) for x, y, keep in points if not keep]
    if not positive:
        return None
    found = [d for d in detections if all(holds(d, x, y) for x, y in positive)
             and not any(holds(d, x, y) for x, y in negative)]
    return min(found, key=lambda d: (-d.score, _area(d)), default=None)


def in_box(detections: Sequence[Detection], box: Sequence[float]) -> Detection | None:
    """The detection mostly inside ``box`` (pixels) that best fills it; None when none fits."""
    if not detections:
        return None
    drawn, boxes = np.array([box], float), np.array([d.box for d in detections], float)
    inside = overlap.box_inside(drawn, boxes)[0]
    fit = overlap.box_iou(drawn, boxes)[0]
    ranked = [(fit[i] * d.score, i) for i, d in enumerate(detections) if inside[i] >= INSIDE and fit[i] >= MIN_FIT]
    return detections[max(ranked)[1]] if ranked else None


def crop(box: Sequence[float], width: int, height: int, side: int) -> tuple[int, int, int, int]:
    """The window around a drawn box the detector sees: twice the box, at least ``side`` (the model's input)."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w = max(x2 - x1, side / 2)
    half_h = max(y2 - y1, side / 2)
    left, right = _span(cx - half_w, cx + half_w, width)
    top, bottom = _span(cy - half_h, cy + half_h, height)
    return left, top, right, bottom


def _span(start: float, end: float, length: int) -> tuple[int, int]:
    """``[start, end)`` moved inside ``[0, length)`` whole where it fits, else the whole length."""
    size = end - start
    if size >= length:
        return 0, length
    start = min(max(0.0, start), length - size)
    return int(start), min(length, round(start + size))


def _area(d: Detection) -> float:
    return max(0.0, d.box[2] - d.box[0]) * max(0.0, d.box[3] - d.box[1])
