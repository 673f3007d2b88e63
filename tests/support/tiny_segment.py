"""Generated filled shapes with their true masks, and a tiny segment model trained on them, cached per machine.

Squares (turned), circles and triangles in two colours; the colour is the class (``red`` 0,
``blue`` 1), the outline varies, so a model must learn masks, not boxes. The truth is kept in
displayed pixels (what Label Studio's brush RLE covers); a tagged file stores its pixels
turned the other way, so only code that applies the EXIF tag finds the masks where the truth
says. The model trains at 128 px, not 640: serving at the checkpoint's own size is checked.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support import model_cache
from tests.support.model_cache import cached_metrics, cached_model, fit
from tests.support.sample_images import STORE_FOR_ORIENTATION

NAMES = ("red", "blue")
COLOURS = ((220, 40, 40), (40, 90, 220))  # learnable by colour
SIZE = (160, 128)  # displayed width, height: close to the 128 px the model runs at
RECIPE = {"arch": "yolo11n-seg.yaml", "n_train": 96, "n_val": 16, "seed": 0, "imgsz": 128, "epochs": 25,
          "batch": 8, "nbs": 8, "warmup_epochs": 1, "train_seed": 0,
          "drawn": "cv2"}  # how ``draw`` fills shapes: part of the cache key, so a change retrains
Outline = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ShapeSample:
    """One written image: its file, the displayed size, and (class, outline in displayed pixels) per object."""

    path: Path
    width: int
    height: int
    objects: tuple[tuple[int, Outline], ...]

    def masks(self) -> list[np.ndarray]:
        """Each object's filled mask (bool, height x width), drawn as the image was."""
        return [outline_mask(outline, self.width, self.height) for _, outline in self.objects]


def tiny_segment_model() -> Path:
    """Path of the cached checkpoint (trains it on first use, a minute or two on 2 cores)."""
    return cached_model("tiny-seg", RECIPE, "tests.support.tiny_segment:train")


def tiny_segment_metrics() -> dict:
    return cached_metrics(tiny_segment_model())


def outline(kind: str, cx: float, cy: float, radius: float, degrees: float) -> Outline:
    """A square (4), triangle (3) or circle (40 points) of circumradius ``radius``, turned ``degrees``."""
    corners = {"square": 4, "triangle": 3, "circle": 40}[kind]
    start = math.radians(degrees)
    return tuple((cx + radius * math.cos(start + 2 * math.pi * k / corners),
                  cy + radius * math.sin(start + 2 * math.pi * k / corners)) for k in range(corners))


def outline_mask(points: Outline, width: int, height: int) -> np.ndarray:
    """The pixels of a drawn object: ``points`` filled as Ultralytics fills a segment row (cv2, edges included)."""
    import cv2

    layer = np.zeros((height, width), np.uint8)
    cv2.fillPoly(layer, [np.round(np.asarray(points) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return layer.astype(bool)


def draw(seed: int, size: tuple[int, int] = SIZE, count: int = 3) -> tuple[Image.Image, list[tuple[int, Outline]]]:
    """1..``count`` non-overlapping filled shapes, wholly inside the image, on a grey, slightly noisy background."""
    rng = random.Random(seed)
    noise = np.random.default_rng(seed).integers(-12, 13, (size[1], size[0], 1))
    pixels = np.clip(128 + noise, 0, 255).repeat(3, axis=2).astype(np.uint8)
    objects: list[tuple[int, Outline]] = []
    wanted = rng.randint(1, count)
    for _ in range(wanted * 20):
        if len(objects) == wanted:
            break
        radius = rng.uniform(16, 30)
        cx, cy = rng.uniform(radius + 2, size[0] - radius - 2), rng.uniform(radius + 2, size[1] - radius - 2)
        if any(math.dist((cx, cy), _centre(o)) < radius + 34 for _, o in objects):
            continue
        cls = rng.randrange(2)
        shape = outline(rng.choice(("square", "triangle", "circle")), cx, cy, radius, rng.uniform(0, 120))
        pixels[outline_mask(shape, *size)] = COLOURS[cls]
        objects.append((cls, shape))
    return Image.fromarray(pixels), objects


def write(folder: Path, seed: int, orientation: int = 1, size: tuple[int, int] = SIZE, suffix: str = ".png"
          ) -> ShapeSample:
    """Draw and save an image (PNG, or a JPEG at quality 95) whose EXIF ``orientation`` turns it back upright."""
    folder.mkdir(parents=True, exist_ok=True)
    displayed, objects = draw(seed, size)
    transpose = STORE_FOR_ORIENTATION[orientation]
    stored = displayed.transpose(transpose) if transpose is not None else displayed
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    path = folder / f"seg-{seed:04d}-o{orientation}{suffix}"
    stored.save(path, exif=exif.tobytes(), **({"quality": 95} if suffix == ".jpg" else {}))
    return ShapeSample(path, displayed.width, displayed.height, tuple(objects))


def segment_row(cls: int, points: Outline, width: int, height: int) -> str:
    """The YOLO segment row of one object: class and its outline relative to the displayed image."""
    return f"{cls} " + " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in points)


def write_dataset(root: Path, n_train: int, n_val: int, seed: int = 0) -> Path:
    """An Ultralytics segment dataset of generated shapes; returns its data.yaml."""
    return model_cache.write_dataset(root, n_train, n_val, seed, _sample, {"names": dict(enumerate(NAMES))})


def _sample(folder: Path, seed: int) -> tuple[str, list[str]]:
    sample = write(folder, seed)
    return sample.path.stem, [segment_row(cls, points, sample.width, sample.height) for cls, points in sample.objects]


def train(recipe: dict, work: Path) -> Path:
    """model_cache's builder: train, then record holdout box and mask mAP in ``work/metrics.json``."""
    data = write_dataset(work / "data", recipe["n_train"], recipe["n_val"], recipe["seed"])
    best, seconds, metrics = fit(recipe, data, work)
    (work / "metrics.json").write_text(json.dumps({"box_map50": float(metrics.box.map50),
                                                   "mask_map50": float(metrics.seg.map50),
                                                   "mask_map50_95": float(metrics.seg.map),
                                                   "train_seconds": seconds, "recipe": recipe}))
    return best


def _centre(points: Outline) -> tuple[float, float]:
    return sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)
