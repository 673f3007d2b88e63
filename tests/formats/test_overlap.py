"""One module holds every IoU (``formats.overlap``): the engines' parity check reads its box IoU too.

``serving.parity`` had its own scalar IoU; it now takes ``overlap.box_iou``. These cases pin
that the one IoU gives the values the scalar one gave, so the parity bar (IoU >= 0.99) moved
nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from yolo_backend.formats.convert import Detection
from yolo_backend.formats.overlap import box_iou, paired_box_iou
from yolo_backend.serving import parity


def scalar_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """The scalar IoU ``serving.parity`` held before, kept here as the reference."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


CASES = [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),  # the same box
    ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),  # half shifted
    ((0, 0, 10, 10), (2, 2, 8, 8), 36 / 100),  # one inside the other
    ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),  # touching edges
    ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),  # apart
    ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),  # zero area: no union, no overlap
    ((0.5, 0.25, 100.75, 50.5), (0.5, 0.25, 100.75, 50.0), 49.75 / 50.25),  # sub-pixel
]


@pytest.mark.parametrize(("a", "b", "expected"), CASES)
def test_box_iou_gives_the_values_the_scalar_iou_gave(a: tuple, b: tuple, expected: float) -> None:
    one = float(box_iou(np.array([a], float), np.array([b], float))[0, 0])
    assert one == pytest.approx(expected, abs=1e-12)
    assert one == pytest.approx(scalar_iou(a, b), abs=1e-12)
    assert float(paired_box_iou(np.array([a], float), np.array([b], float))[0]) == pytest.approx(one, abs=1e-12)


def test_box_iou_agrees_with_the_scalar_iou_on_random_boxes() -> None:
    rng = np.random.default_rng(23)
    corners = rng.uniform(0, 640, (200, 4))
    boxes = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])], 1)
    a, b = boxes[:100], boxes[100:]
    expected = np.array([[scalar_iou(x, y) for y in b] for x in a])
    assert np.allclose(box_iou(a, b), expected, rtol=0, atol=1e-12)


def test_parity_pairs_by_the_one_iou_at_its_bar() -> None:
    """Just above IoU 0.99 pairs, just below does not, as with the scalar IoU."""
    reference = [Detection(0, 0.9, (0.0, 0.0, 100.0, 100.0))]
    close = [Detection(0, 0.9, (0.0, 0.0, 100.0, 99.5))]  # IoU 0.995
    off = [Detection(0, 0.9, (0.0, 0.0, 100.0, 98.5))]  # IoU 0.985
    assert scalar_iou(reference[0].box, close[0].box) >= parity.MIN_IOU > scalar_iou(reference[0].box, off[0].box)
    assert parity.match(reference, close) == [(0, 0)]
    assert parity.match(reference, off) == []
    assert parity.match([], close) == [] and parity.match(reference, []) == []
    assert not hasattr(parity, "iou")  # one IoU module: formats.overlap
