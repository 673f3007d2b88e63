"""How much two regions agree, per geometry: boxes, polygons, rotated boxes, keypoints.

What the holdout scoring matches predictions to annotations by (``training.scoring``);
each kind picks the one its regions need (``Kind.overlap``). Plain numpy; polygons are
rasterised with OpenCV, which Ultralytics already brings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Points = Sequence[tuple[float, float]]
RASTER = 256  # polygons are compared on a grid this many cells across their joint bounds


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection areas of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), and each side's areas."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return (np.clip(rb - lt, 0, None).prod(axis=2), (a[:, 2:] - a[:, :2]).prod(axis=1),
            (b[:, 2:] - b[:, :2]).prod(axis=1))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), corners x1 y1 x2 y2."""
    inter, area_a, area_b = _intersections(a, b)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def box_ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box, every box of ``a`` (n, 4) with every box of ``b`` (m, 4): 1 when one
    lies inside the other, as the piece of an object a tile edge cut lies inside the whole (``serving.tiles``)."""
    inter, area_a, area_b = _intersections(a, b)
    return inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-12)


def box_inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Of every box of ``b`` (m, 4), the part inside each box of ``a`` (n, 4): what of a detection a drawn box holds
    (``assist.choose``)."""
    inter, _, area_b = _intersections(a, b)
    return inter / np.maximum(area_b[None, :], 1e-12)


def paired_box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``a[i]`` with ``b[i]`` for each row of two (n, 4) arrays: n values, not box_iou's n x n."""
    lt, rb = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=1)
    union = (a[:, 2:] - a[:, :2]).prod(axis=1) + (b[:, 2:] - b[:, :2]).prod(axis=1) - inter
    return inter / np.maximum(union, 1e-12)


def polygon_iou(a: Sequence[Points], b: Sequence[Points]) -> np.ndarray:
    """IoU of every polygon in ``a`` with every one in ``b`` (pixels), rasterised pairwise.

    Only pairs whose bounding boxes meet are rasterised, on a ``RASTER``-wide grid over the
    pair's joint bounds: exact enough to rank matches (an IoU of 0.5 is off by < 0.01).
    """
    import cv2

    out = np.zeros((len(a), len(b)))
    bounds_a = np.array([_bounds(p) for p in a], float).reshape(-1, 4)
    bounds_b = np.array([_bounds(p) for p in b], float).reshape(-1, 4)
    meets = box_iou(bounds_a, bounds_b) > 0
    for i, j in zip(*np.nonzero(meets)):
        x1, y1 = np.minimum(bounds_a[i, :2], bounds_b[j, :2])
        x2, y2 = np.maximum(bounds_a[i, 2:], bounds_b[j, 2:])
        scale = RASTER / max(x2 - x1, y2 - y1, 1e-9)
        size = (int(np.ceil((y2 - y1) * scale)) + 2, int(np.ceil((x2 - x1) * scale)) + 2)
        masks = []
        for points in (a[i], b[j]):
            mask = np.zeros(size, np.uint8)
            grid = np.round((np.asarray(points, float) - (x1, y1)) * scale).astype(np.int32)
            cv2.fillPoly(mask, [grid], 1)
            masks.append(mask.astype(bool))
        union = np.logical_or(*masks).sum()
        out[i, j] = np.logical_and(*masks).sum() / union if union else 0.0
    return out


COCO_POINTS = 17  # a pose set of this many points is scored with COCO's sigmas, as `yolo val` does


def _coco_sigmas() -> np.ndarray:
    """COCO's 17 keypoint sigmas, from Ultralytics (imported here only: the rest of this module needs no torch)."""
    from ultralytics.utils.metrics import OKS_SIGMA

    return np.asarray(OKS_SIGMA, float)


def keypoint_similarity(a: np.ndarray, b: np.ndarray, areas: np.ndarray, sigmas: np.ndarray | None = None
                        ) -> np.ndarray:
    """Object keypoint similarity (COCO's OKS) of instances ``a`` (n, k, 2) against ``b`` (m, k, 3).

    ``b`` holds the annotated points with their visibility (0: not labeled, left out) and
    ``areas`` (m,) the annotated instances' areas in square pixels. Sigmas default to what
    Ultralytics' PoseValidator uses: COCO's per-point sigmas for a 17-point set, else 1/k each.
    """
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    k = b.shape[1]
    if sigmas is None:
        sigmas = _coco_sigmas() if k == COCO_POINTS else np.full(k, 1.0 / k)
    sigmas = np.asarray(sigmas, float)
    d = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # (n, m, k) squared distances
    visible = b[None, :, :, 2] > 0
    e = d / ((2 * sigmas) ** 2 * (areas[None, :, None] + np.spacing(1)) * 2)
    counted = visible.sum(-1)
    return np.where(counted > 0, (np.exp(-e) * visible).sum(-1) / np.maximum(counted, 1), 0.0)


def _bounds(points: Points) -> tuple[float, float, float, float]:
    xs, ys = [float(x) for x, _ in points], [float(y) for _, y in points]
    return min(xs), min(ys), max(xs), max(ys)


def outline_iou(a: Sequence[tuple[Sequence[float], Points | None]], b: Sequence[tuple[Sequence[float], Points | None]]
                ) -> np.ndarray:
    """``polygon_iou`` of (box, outline) pairs; a pair without an outline counts as its box's 4 corners."""
    def outline(box: Sequence[float], points: Points | None) -> Points:
        if points and len(points) >= 3:
            return points
        x1, y1, x2, y2 = box
        return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]

    return polygon_iou([outline(*pair) for pair in a], [outline(*pair) for pair in b])
