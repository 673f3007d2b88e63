"""Generated images an export is checked on when no project images exist (the base model at start).

Made from numpy and OpenCV alone: what serves never imports the test aids.
"""

from __future__ import annotations

import numpy as np

PROBE_SIZES = ((480, 352), (352, 480), (416, 416), (640, 288), (320, 240), (288, 384), (512, 384), (448, 256),
               (256, 448))  # (width, height): landscape, portrait, square and wide letterbox differently


def probe_images(seed: int = 0) -> list[np.ndarray]:
    """BGR images of filled rectangles and ellipses on textured backgrounds, to check an export with.

    Made here from numpy and OpenCV alone: what serves does not import the test aids.
    """
    rng = np.random.default_rng(seed)
    return [_probe(rng, width, height) for width, height in PROBE_SIZES]


def _probe(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    import cv2

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 200, size=3).astype(np.float32)
    waves = np.sin(xs[..., None] / rng.uniform(8, 40, 3) + ys[..., None] / rng.uniform(8, 40, 3)) * 30
    pixels = base + waves + rng.normal(0, 12, size=(height, width, 3))
    img = np.ascontiguousarray(np.clip(pixels, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(4, 9))):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        w, h = (int(rng.integers(min(width, height) // 10, min(width, height) // 2)) for _ in range(2))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, thickness=-1)
        else:
            cv2.ellipse(img, (x + w // 2, y + h // 2), (w // 2, h // 2), float(rng.uniform(0, 180)), 0, 360, colour,
                        thickness=-1)
    return img
