"""Masks: ``<BrushLabels>`` regions (Label Studio's RLE), from a segment checkpoint's masks.

Label Studio value: ``{"format": "rle", "rle": [...]}``, the run-length code (its own
bit-packed format, ``label_studio_sdk.converter.brush``) of an RGBA image of the displayed
size, 4 bytes a pixel; the brush paints the alpha channel, so a pixel is in the mask when its
alpha is at least half. The region's ``original_width``/``original_height`` give that size.

YOLO row: the segment line ``c x1 y1 ... xn yn`` (relative), as for outlines. A mask may hold
several pieces and holes, a row one outline: the outer contours of the largest piece and of
every other piece of at least ``MIN_PIECE_AREA`` square pixels (smaller ones are brush specks)
are joined into one outline by Ultralytics' own rule for multi-part objects
(``merge_multi_segment``: thin seams between the closest points), so one region stays one
object; holes are filled. A mask without area (single pixels, a line) gives no row.

Pixel convention, Ultralytics' own: an outline point ``(x, y)`` in pixels names pixel
``(round(x), round(y))`` (``masks.xy`` are border pixel indices scaled to the image, and
training fills a row with ``cv2.fillPoly`` at ``row * size``). A mask's outline runs through
its border pixels, and filling an outline takes every pixel it covers, edges included. So
mask -> row -> mask gives back the same pixels, a row on whole pixels (a box row, say) comes
back unchanged, and any other row moves by under a pixel.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from ..formats import convert
from ..formats import overlap as geometry
from ..formats.convert import Detection, YoloBox
from .base import Kind, Pair

MIN_PIECE_AREA = 4.0  # square pixels: a piece beside a larger one and smaller than this is a stray brush speck
SUBPIXEL_BITS = 4  # outlines are filled with 1/16 pixel precision (cv2.fillPoly's ``shift``)

Points = Sequence[tuple[float, float]]


class Masks(Kind):
    """Brush masks: trained as segment rows, scored by the IoU of the filled outlines."""

    CONTROL = "BrushLabels"
    RESULT_TYPE = "brushlabels"
    TASKS = ("segment",)  # ``Results.masks``
    TRAIN_TASK = "segment"

    def to_value(self, det: Detection, width: int, height: int) -> dict[str, Any]:
        """Model output -> Label Studio value: the mask outline filled at the displayed size (the box without one)."""
        outline = det.polygon if det.polygon and len(det.polygon) >= 3 else _corners(det.box)
        return value_of(fill(outline, width, height))

    def to_line(self, region: dict[str, Any], class_id: int) -> str | None:
        """Label Studio region -> ``c x1 y1 ... xn yn``, the mask's outline; None when empty or unreadable."""
        mask = region_mask(region)
        if mask is None:
            return None
        outline = mask_outline(mask)
        if outline is None:
            return None
        height, width = mask.shape
        return convert.format_points_line(class_id, ((x / width, y / height) for x, y in outline))

    def from_yolo(self, label: YoloBox, width: int, height: int) -> dict[str, Any]:
        """YOLO row (a segment row's outline, else its box) -> Label Studio value on a ``width x height`` image."""
        if label.points and len(label.points) >= 3:
            outline: Points = [(x * width, y * height) for x, y in label.points]
        else:
            outline = _corners(((label.cx - label.w / 2) * width, (label.cy - label.h / 2) * height,
                                (label.cx + label.w / 2) * width, (label.cy + label.h / 2) * height))
        return value_of(fill(outline, width, height))

    def shape(self, det: Detection) -> tuple[tuple[float, float], ...] | None:
        """What the holdout scoring compares: the mask outline (pixels); the truth is the row's outline (default)."""
        return det.polygon

    def overlap(self, found: Sequence[Pair], truths: Sequence[Pair]) -> np.ndarray:
        """IoU of the filled outlines, not of their bounding boxes."""
        return geometry.outline_iou(found, truths)


KIND = Masks()


# -- masks <-> Label Studio's RLE ------------------------------------------------------------------
def value_of(mask: np.ndarray) -> dict[str, Any]:
    """A bool mask (height x width of the displayed image) -> Label Studio brush value (RGBA RLE, opaque white)."""
    return {"format": "rle", "rle": mask2rle(np.where(mask, 255, 0).astype(np.uint8))}


def region_mask(region: dict[str, Any]) -> np.ndarray | None:
    """A brush region's mask (bool, height x width); None when it has no RLE of its displayed size."""
    value = region.get("value") or {}
    rle = value.get("rle") if value.get("format", "rle") == "rle" else None
    try:
        width, height = int(region["original_width"]), int(region["original_height"])
        # the first 32 bits count the values: checked before decoding allocates them
        if not rle or width <= 0 or height <= 0 or int.from_bytes(bytes(rle[:4]), "big") != width * height * 4:
            return None
        flat = decode_rle(rle)
    except (KeyError, TypeError, ValueError, IndexError):  # no size, or bytes that are no RLE
        return None
    return flat.reshape(height, width, 4)[:, :, 3] >= 128


def fill(outline: Points, width: int, height: int) -> np.ndarray:
    """The pixels an outline (displayed pixels, Ultralytics' convention) covers, edges included: a bool mask."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    scale = 1 << SUBPIXEL_BITS
    grid = np.round(np.asarray(outline, float).reshape(-1, 2) * scale).astype(np.int32)
    cv2.fillPoly(mask, [grid], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return mask.astype(bool)


def mask_outline(mask: np.ndarray) -> np.ndarray | None:
    """One outline (pixels, through the border pixels) around every piece worth training on; None if none is."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contours = sorted((c for c in contours if len(c) >= 3 and cv2.contourArea(c) > 0), key=cv2.contourArea,
                      reverse=True)
    if not contours:  # no area: single pixels, lines
        return None
    pieces = [contours[0].reshape(-1, 2)] + [c.reshape(-1, 2) for c in contours[1:]
                                             if cv2.contourArea(c) >= MIN_PIECE_AREA]
    if len(pieces) > 1:
        from ultralytics.data.converter import merge_multi_segment  # Ultralytics' rule for multi-part objects

        pieces = [np.concatenate(merge_multi_segment(pieces))]
    return pieces[0].astype(float)


def _corners(box: Sequence[float]) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = box
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
