"""Coordinates and formats shared by every kind: pixels, percent, YOLO lines, the region envelope.

Plain functions on plain data: no I/O, no torch, no Flask, so every rule about
coordinates lives here and is tested in isolation. What a kind of region *means*
(a box, an outline, ...) lives in ``yolo_backend.kinds``, one module per kind.

Coordinate systems:
- pixels: ``(x1, y1, x2, y2)`` on the image as displayed (EXIF orientation applied);
- YOLO: ``(cx, cy, w, h)`` relative to the displayed image, 0..1;
- Label Studio: ``x, y, width, height`` in percent (0..100) of the displayed image,
  ``x, y`` being the top-left corner; polygons are ``[[x, y], ...]`` in percent.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .controls import ControlSpec

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
    corners: tuple[tuple[float, float], ...] | None = None  # an oriented box's 4 corners, pixels
    keypoints: tuple[tuple[float, float, float], ...] | None = None  # a pose model's (x, y, confidence) per point


@dataclass(frozen=True)
class YoloBox:
    """One line of a YOLO label file: class index, relative centre box, and the outline a segment line holds."""

    class_id: int
    cx: float
    cy: float
    w: float
    h: float
    points: tuple[tuple[float, float], ...] | None = None  # relative (x, y) of a segment line, else None


@dataclass(frozen=True)
class Target:
    """Where results go: a control of the label config, as the checkpoint serving it fills it.

    The control itself (names, result type, options) is its ``ControlSpec``; a ``box_control``
    there is kept only when the same checkpoint serves that control now (keypoints name their
    instance's box region as ``parentID``).
    """

    spec: ControlSpec
    labels: dict[int, str] = field(default_factory=dict)  # model class id -> label
    threshold: float = 0.5
    class_thresholds: dict[int, float] = field(default_factory=dict)  # model class id -> its own threshold
    task: str | None = None  # the serving checkpoint's task: picks the kind where two share a result type

    def threshold_for(self, class_id: int) -> float:
        return self.class_thresholds.get(class_id, self.threshold)

    @property
    def lowest_threshold(self) -> float:
        """What the model is asked for: every region any class threshold could keep."""
        return min([self.threshold, *self.class_thresholds.values()])


@dataclass(frozen=True)
class Place:
    """Where imported regions go: control and object names, the displayed size, and a seed for their ids."""

    from_name: str
    to_name: str
    size: tuple[int, int]
    seed: str = ""  # region ids: region_id(seed, index)
    keypoint_names: tuple[str, ...] = ()  # a pose dataset's keypoint names (data.yaml kpt_names, --keypoints)


def clip(value: float, low: float = 0.0, high: float = 100.0) -> float:
    return min(max(value, low), high)


def pct(value: float) -> float:
    """A percent rounded to the precision every region is written with."""
    return round(value, PERCENT_DECIMALS)


def pixels_to_percent_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Pixel corners -> Label Studio ``(x, y, width, height)`` in percent, clipped to the image."""
    x1, y1, x2, y2 = box
    left = clip(min(x1, x2) / width * 100)
    top = clip(min(y1, y2) / height * 100)
    right = clip(max(x1, x2) / width * 100)
    bottom = clip(max(y1, y2) / height * 100)
    x, y = pct(left), pct(top)
    # Width from the rounded corner keeps x + width <= 100 after rounding.
    return x, y, pct(min(right - x, 100.0 - x)), pct(min(bottom - y, 100.0 - y))


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


def clipped_box(x: float, y: float, width: float, height: float) -> tuple[float, float, float, float] | None:
    """A percent box clipped to the image (people drag boxes past the edge); None when nothing is left."""
    left, top, right, bottom = clip(x), clip(y), clip(x + width), clip(y + height)
    if right <= left or bottom <= top:
        return None
    return left, top, right - left, bottom - top


def box_polygon(x: float, y: float, width: float, height: float) -> list[list[float]]:
    """A percent box as the 4-point polygon our users drew by hand, clockwise from top-left."""
    right, bottom = pct(x + width), pct(y + height)
    return [[x, y], [right, y], [right, bottom], [x, bottom]]


def percent_points(points: Iterable[Sequence[float]], width: float = 100.0, height: float = 100.0
                   ) -> list[list[float]]:
    """Points in ``width`` x ``height`` units (pixels; 1 x 1 for relative) -> Label Studio percent, clipped."""
    return [[pct(clip(float(x) / width * 100)), pct(clip(float(y) / height * 100))] for x, y in points]


def rotated_corners(x: float, y: float, w: float, h: float, degrees: float, width: float, height: float
                    ) -> list[tuple[float, float]]:
    """Corners of a Label Studio box rotated about its top-left corner, in percent.

    Rotation happens in pixels (percent axes are not isotropic), so the displayed image
    size (``original_width``/``original_height`` of the region) is needed.
    """
    ox, oy = x * width / 100, y * height / 100
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    corners = []
    for dx, dy in ((0, 0), (w * width / 100, 0), (w * width / 100, h * height / 100), (0, h * height / 100)):
        corners.append(((ox + dx * cos - dy * sin) / width * 100, (oy + dx * sin + dy * cos) / height * 100))
    return corners


def region_id(*parts: Any) -> str:
    """Stable short id, so the same prediction always yields the same region ids."""
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:10]


def region(value: dict[str, Any], label: str, *, result_type: str, from_name: str, to_name: str,
           size: tuple[int, int] | None, region_id: str, score: float | None = None,
           label_key: str | None = None) -> dict[str, Any]:
    """The envelope every region shares, around a kind's ``value``: names, type, displayed size, score.

    Every region this package writes is made here: predictions, imports, the review's flags
    and video tracks. ``size`` is the displayed (EXIF-applied) ``(width, height)`` the percent
    coordinates refer to; None for a video track, whose keyframes Label Studio places on the
    video. ``label_key``: where ``value`` holds the label, when not under the result type (a
    video box's comes from a ``<Labels>`` control: ``labels``).
    """
    out: dict[str, Any] = {"id": region_id, "from_name": from_name, "to_name": to_name, "type": result_type}
    if size is not None:
        out.update(original_width=size[0], original_height=size[1], image_rotation=0)
    out["value"] = {**value, label_key or result_type: [label]}
    if score is not None:
        out["score"] = round(float(score), SCORE_DECIMALS)
    return out


def region_label(region: dict[str, Any], result_type: str) -> str | None:
    """The first label of a region of ``result_type`` (None when it carries none)."""
    labels = (region.get("value") or {}).get(result_type) or []
    return str(labels[0]) if labels else None


def task_prediction(regions: list[dict[str, Any]], model_version: str, score: float | None = None
                    ) -> dict[str, Any]:
    """Wrap regions as one task's prediction; ``score``: the task's (``uncertainty.task_score``), else the mean."""
    if score is None:
        score = sum(r["score"] for r in regions) / len(regions) if regions else 0.0
    return {"result": regions, "score": round(score, SCORE_DECIMALS), "model_version": model_version}


def parse_yolo_line(line: str) -> YoloBox:
    """``class cx cy w h [score]``, or a segment line ``class x1 y1 ... xn yn`` (its box, its points kept)."""
    parts = line.split()
    if len(parts) < 5:
        raise ValueError(f"expected 'class cx cy w h', got {line.strip()!r}")
    class_id = int(float(parts[0]))
    numbers = [float(p) for p in parts[1:]]
    if len(numbers) > 5 and len(numbers) % 2 == 0:
        # A segment line, as Ultralytics tells it (more than 6 columns); its bounding box is the detection box.
        xs, ys = numbers[0::2], numbers[1::2]
        return YoloBox(class_id, (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs),
                       max(ys) - min(ys), tuple(zip(xs, ys)))
    cx, cy, w, h = numbers[:4]
    return YoloBox(class_id, cx, cy, w, h)


def format_yolo_line(box: YoloBox, decimals: int = 6) -> str:
    """``class cx cy w h``: a detection row."""
    return f"{box.class_id} " + " ".join(f"{v:.{decimals}f}" for v in (box.cx, box.cy, box.w, box.h))


def format_points_line(class_id: int, points: Iterable[Sequence[float]], decimals: int = 6) -> str:
    """``class x1 y1 ... xn yn`` (relative): a segment row, which detect training reads as its box."""
    return f"{class_id} " + " ".join(f"{float(x):.{decimals}f} {float(y):.{decimals}f}" for x, y in points)


def is_segment_line(line: str) -> bool:
    """Ultralytics' own rule: a label row with more than 6 columns is a segment."""
    return len(line.split()) > 6


def box_corners(box: YoloBox) -> list[tuple[float, float]]:
    """The 4 relative corners of a YOLO box, clockwise from top-left."""
    left, top, right, bottom = box.cx - box.w / 2, box.cy - box.h / 2, box.cx + box.w / 2, box.cy + box.h / 2
    return [(left, top), (right, top), (right, bottom), (left, bottom)]
