"""Conversion between detections, YOLO boxes and Label Studio results.

Plain functions on plain data: no I/O, no torch, no Flask, so every rule about
coordinates lives here and is tested in isolation.

Coordinate systems:
- pixels: ``(x1, y1, x2, y2)`` on the image as displayed (EXIF orientation applied);
- YOLO: ``(cx, cy, w, h)`` relative to the displayed image, 0..1;
- Label Studio: ``x, y, width, height`` in percent (0..100) of the displayed image,
  ``x, y`` being the top-left corner; polygons are ``[[x, y], ...]`` in percent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# Four decimals of a percent is 1e-6 of the image: sub-pixel for any real photo,
# and precise enough for a YOLO -> Label Studio -> YOLO round trip within 1e-4.
PERCENT_DECIMALS = 4
SCORE_DECIMALS = 4


@dataclass(frozen=True)
class Detection:
    """One object found by the model, in pixels of the displayed image."""

    class_id: int
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    polygon: tuple[tuple[float, float], ...] | None = None  # mask outline, pixels


@dataclass(frozen=True)
class YoloBox:
    """One line of a YOLO label file: class index and relative centre box."""

    class_id: int
    cx: float
    cy: float
    w: float
    h: float


@dataclass(frozen=True)
class Target:
    """Where results go: the control/object tag pair of the label config."""

    from_name: str
    to_name: str
    kind: str  # "rectanglelabels" or "polygonlabels"
    labels: dict[int, str] = field(default_factory=dict)  # model class id -> label
    threshold: float = 0.5
    class_thresholds: dict[int, float] = field(default_factory=dict)  # model class id -> its own threshold

    def threshold_for(self, class_id: int) -> float:
        return self.class_thresholds.get(class_id, self.threshold)

    @property
    def lowest_threshold(self) -> float:
        """What the model is asked for: every region any class threshold could keep."""
        return min([self.threshold, *self.class_thresholds.values()])


def _clip(value: float, low: float = 0.0, high: float = 100.0) -> float:
    return min(max(value, low), high)


def _pct(value: float) -> float:
    return round(value, PERCENT_DECIMALS)


def pixels_to_percent_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Pixel corners -> Label Studio ``(x, y, width, height)`` in percent, clipped to the image."""
    x1, y1, x2, y2 = box
    left = _clip(min(x1, x2) / width * 100)
    top = _clip(min(y1, y2) / height * 100)
    right = _clip(max(x1, x2) / width * 100)
    bottom = _clip(max(y1, y2) / height * 100)
    x, y = _pct(left), _pct(top)
    # Width from the rounded corner keeps x + width <= 100 after rounding.
    return x, y, _pct(min(right - x, 100.0 - x)), _pct(min(bottom - y, 100.0 - y))


def yolo_to_percent(box: YoloBox) -> tuple[float, float, float, float]:
    """Relative centre box -> Label Studio percent box, clipped to the image."""
    half_w, half_h = box.w / 2, box.h / 2
    return pixels_to_percent_box(
        (box.cx - half_w, box.cy - half_h, box.cx + half_w, box.cy + half_h), 1, 1
    )


def percent_to_yolo(class_id: int, x: float, y: float, width: float, height: float) -> YoloBox:
    """Label Studio percent box -> relative centre box."""
    return YoloBox(class_id, (x + width / 2) / 100, (y + height / 2) / 100, width / 100, height / 100)


def points_bounds(points: Iterable[Sequence[float]]) -> tuple[float, float, float, float]:
    """Bounding ``(x, y, width, height)`` of percent points."""
    xs, ys = zip(*((float(p[0]), float(p[1])) for p in points))
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def box_polygon(x: float, y: float, width: float, height: float) -> list[list[float]]:
    """A percent box as the 4-point polygon our users drew by hand, clockwise from top-left."""
    right, bottom = _pct(x + width), _pct(y + height)
    return [[x, y], [right, y], [right, bottom], [x, bottom]]


def region_id(*parts: Any) -> str:
    """Stable short id, so the same prediction always yields the same region ids."""
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:10]


def detection_to_region(det: Detection, target: Target, width: int, height: int, index: int = 0) -> dict[str, Any]:
    """One detection -> one Label Studio result region for ``target``."""
    label = target.labels[det.class_id]
    x, y, w, h = pixels_to_percent_box(det.box, width, height)
    value: dict[str, Any]
    if target.kind == "polygonlabels":
        if det.polygon and len(det.polygon) >= 3:
            points = [[_pct(_clip(px / width * 100)), _pct(_clip(py / height * 100))] for px, py in det.polygon]
        else:
            points = box_polygon(x, y, w, h)
        value = {"points": points, "closed": True, "polygonlabels": [label]}
    else:
        value = {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}
    return {
        "id": region_id(target.from_name, index, det.box),
        "from_name": target.from_name,
        "to_name": target.to_name,
        "type": target.kind,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "score": round(float(det.score), SCORE_DECIMALS),
        "value": value,
    }


def detections_to_regions(
    detections: Iterable[Detection], targets: Iterable[Target], width: int, height: int
) -> list[dict[str, Any]]:
    """Every detection whose class maps to a label and whose score passes, for every target."""
    regions: list[dict[str, Any]] = []
    detections = list(detections)
    for target in targets:
        for index, det in enumerate(detections):
            if det.class_id in target.labels and det.score >= target.threshold_for(det.class_id):
                regions.append(detection_to_region(det, target, width, height, index))
    return regions


def task_prediction(regions: list[dict[str, Any]], model_version: str) -> dict[str, Any]:
    """Wrap regions as one task's prediction; the task score is the mean region score."""
    score = sum(r["score"] for r in regions) / len(regions) if regions else 0.0
    return {"result": regions, "score": round(score, SCORE_DECIMALS), "model_version": model_version}


def region_to_yolo(region: dict[str, Any], class_ids: dict[str, int]) -> YoloBox | None:
    """A Label Studio rectangle or polygon region -> YOLO box; None if it carries no known label."""
    value = region.get("value") or {}
    kind = region.get("type")
    labels = value.get(kind) or value.get("rectanglelabels") or value.get("polygonlabels") or []
    if not labels or labels[0] not in class_ids:
        return None
    if "points" in value:
        if not value["points"]:
            return None
        x, y, w, h = points_bounds(value["points"])
    elif all(k in value for k in ("x", "y", "width", "height")):
        x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
        if float(value.get("rotation") or 0):
            x, y, w, h = points_bounds(rotated_corners(x, y, w, h, float(value["rotation"]), region))
    else:
        return None
    # Clip to the image: people drag boxes past the edge.
    left, top = _clip(x), _clip(y)
    right, bottom = _clip(x + w), _clip(y + h)
    if right <= left or bottom <= top:
        return None
    return percent_to_yolo(class_ids[labels[0]], left, top, right - left, bottom - top)


def rotated_corners(
    x: float, y: float, w: float, h: float, degrees: float, region: dict[str, Any]
) -> list[tuple[float, float]]:
    """Corners of a Label Studio box rotated about its top-left corner, in percent.

    Rotation happens in pixels (percent axes are not isotropic), so the image size
    from the region is used when present.
    """
    import math

    iw = float(region.get("original_width") or 100)
    ih = float(region.get("original_height") or 100)
    ox, oy = x * iw / 100, y * ih / 100
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    corners = []
    for dx, dy in ((0, 0), (w * iw / 100, 0), (w * iw / 100, h * ih / 100), (0, h * ih / 100)):
        corners.append(((ox + dx * cos - dy * sin) / iw * 100, (oy + dx * sin + dy * cos) / ih * 100))
    return corners


def parse_yolo_line(line: str) -> YoloBox:
    """``class cx cy w h`` (extra columns such as a score or segment points are read as a polygon)."""
    parts = line.split()
    if len(parts) < 5:
        raise ValueError(f"expected 'class cx cy w h', got {line.strip()!r}")
    class_id = int(float(parts[0]))
    numbers = [float(p) for p in parts[1:]]
    if len(numbers) > 5 and len(numbers) % 2 == 0:
        # A segmentation line: class x1 y1 x2 y2 ...; its bounding box is the detection box.
        xs, ys = numbers[0::2], numbers[1::2]
        return YoloBox(class_id, (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys))
    cx, cy, w, h = numbers[:4]
    return YoloBox(class_id, cx, cy, w, h)


def format_yolo_line(box: YoloBox, decimals: int = 6) -> str:
    return f"{box.class_id} " + " ".join(f"{v:.{decimals}f}" for v in (box.cx, box.cy, box.w, box.h))
