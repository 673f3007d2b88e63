"""A detector stand-in for tests that need exact, known detections.

It finds the pixels of one pure colour in the image it is given and returns their
bounding box, so a test can tell exactly which orientation reached the model.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from yolo_backend.config import Settings
from yolo_backend.formats.convert import Detection
from yolo_backend.serving.model_store import ModelStore

RED_BGR = (0, 0, 255)
# The label config the stand-in's classes fit: one box control with the label "Car".
CAR_CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
              '<Label value="Car"/></RectangleLabels></View>')


def png_bytes(size: tuple[int, int] = (8, 6), color: str = "red") -> bytes:
    """A small PNG in memory, for servers that hand out an image."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


class ColorBlobDetector:
    """Class 0 ("Car") wherever the image is pure red (BGR 0,0,255), score 0.9."""

    names = {0: "Car", 1: "Person"}

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[int] = []

    def detect(self, images: list[np.ndarray], conf: float = 0.25, bulk: bool = False) -> list[list[Detection]]:
        self.calls.append(len(images))
        out = []
        for img in images:
            mask = np.all(img == RED_BGR, axis=-1)
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                out.append([])
                continue
            box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            out.append([Detection(0, 0.9, box)])
        return out


def standin_store(settings: Settings, detector: ColorBlobDetector | None = None,
                  load_seconds: float = 0.0) -> tuple[ModelStore, ColorBlobDetector]:
    """A ModelStore whose loader returns the stand-in (after ``load_seconds``, to test loading states)."""
    detector = detector or ColorBlobDetector()
    base = Path(settings.model_root) / settings.model_path
    base.parent.mkdir(parents=True, exist_ok=True)
    if not base.exists():
        base.write_bytes(b"stand-in weights")
    gate = threading.Event()

    def loader(path: Path, **_options: object) -> ColorBlobDetector:
        if load_seconds:
            gate.wait(load_seconds)
            time.sleep(0)
        return detector

    return ModelStore(settings, loader=loader), detector  # type: ignore[arg-type]
