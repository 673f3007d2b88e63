"""What a smart tool sent: Label Studio's ``context`` of an interactive ``/predict``, as one ``Prompt``.

With interactive pre-annotations on, the editor sends the regions drawn with a ``smart="true"``
tool to Label Studio, which passes them on as ``params.context`` of a one-task ``/predict``
(docs/assist.md, "What Label Studio sends"). Its shape, read in Label Studio 1.23.2 and seen
in its requests::

    {"result": [{"type": "keypointlabels", "from_name": "click", "to_name": "image",
                 "original_width": 640, "original_height": 480, "image_rotation": 0,
                 "is_positive": true,
                 "value": {"x": 31.2, "y": 55.0, "width": 0.6, "keypointlabels": ["receipt"]}}, ...]}

Keypoints (``keypointlabels``, or ``keypoint`` from a bare tool) are points, positive unless
``is_positive`` is false (the annotator's "negative" points: the object is not there); a
rectangle (``rectanglelabels``, or ``rectangle``) is a box, rotated about its top-left corner
as Label Studio draws it. Coordinates are percent of the displayed image. Regions of other
types, and of other images than the first prompt's, are ignored; a context holding no usable
region is no smart request at all (``None``), so ``/predict`` pre-labels as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest
from ..formats import convert

POINT_TYPES = ("keypointlabels", "keypoint")
BOX_TYPES = ("rectanglelabels", "rectangle")

Point = tuple[float, float, bool]  # x, y (percent of the displayed image), positive


@dataclass(frozen=True)
class Prompt:
    """The points and box one smart request draws on one image, and the label the annotator chose."""

    to_name: str  # the image they are on
    from_name: str  # the smart control they were drawn with
    kind: str  # "point" or "box": what the latest region drawn was
    label: str | None
    points: tuple[Point, ...] = ()
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2, percent

    def pixel_points(self, width: int, height: int) -> list[tuple[float, float, bool]]:
        return [(x / 100 * width, y / 100 * height, positive) for x, y, positive in self.points]

    def pixel_box(self, width: int, height: int) -> tuple[float, float, float, float] | None:
        if self.box is None:
            return None
        x1, y1, x2, y2 = self.box
        return x1 / 100 * width, y1 / 100 * height, x2 / 100 * width, y2 / 100 * height


def is_smart(context: Any) -> bool:
    """Whether ``context`` carries a region to answer (anything else pre-labels as usual)."""
    return isinstance(context, dict) and isinstance(context.get("result"), list) and bool(context["result"])


def parse(context: Any) -> Prompt | None:
    """The prompt of a smart request; None when it holds no point or box; BadRequest for a malformed one."""
    if not is_smart(context):
        return None
    regions = [r for r in context["result"] if isinstance(r, dict) and r.get("type") in POINT_TYPES + BOX_TYPES]
    if not regions:
        return None
    first = regions[-1]  # the latest region names the image and the control
    to_name, from_name = str(first.get("to_name") or ""), str(first.get("from_name") or "")
    points: list[Point] = []
    box = None
    label = None
    for region in regions:
        if str(region.get("to_name") or "") != to_name:
            continue
        value = region.get("value")
        if not isinstance(value, dict):
            raise BadRequest(f"context region {region.get('id')!r} has no 'value' object")
        label = _label(value, region["type"]) or label
        if region["type"] in POINT_TYPES:
            x, y = _number(value, "x"), _number(value, "y")
            points.append((convert.clip(x), convert.clip(y), region.get("is_positive", True) is not False))
        else:
            box = _box(value, region)
    return Prompt(to_name, from_name, "point" if first["type"] in POINT_TYPES else "box", label, tuple(points), box)


def _label(value: dict[str, Any], result_type: str) -> str | None:
    labels = value.get(result_type)
    if isinstance(labels, list) and labels and isinstance(labels[0], str):
        return labels[0]
    return None


def _number(value: dict[str, Any], key: str) -> float:
    raw = value.get(key)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != raw:  # NaN
        raise BadRequest(f"context region value needs a number {key!r}, got {raw!r}")
    return float(raw)


def _box(value: dict[str, Any], region: dict[str, Any]) -> tuple[float, float, float, float]:
    """x1, y1, x2, y2 in percent: a rotated box by its bounds, clipped to the image."""
    x, y, w, h = (_number(value, key) for key in ("x", "y", "width", "height"))
    degrees = float(value.get("rotation") or 0)
    if degrees:
        size = float(region.get("original_width") or 100), float(region.get("original_height") or 100)
        x, y, w, h = convert.points_bounds(convert.rotated_corners(x, y, w, h, degrees, *size))
    clipped = convert.clipped_box(x, y, w, h)
    if clipped is None:
        raise BadRequest(f"context box {value!r} lies outside the image")
    left, top, width, height = clipped
    return left, top, left + width, top + height
