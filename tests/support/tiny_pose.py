"""Generated pose data: tilted squares whose 4 corners are the keypoints, and a tiny pose model trained on them.

A square is tilted at most ``MAX_TILT`` degrees, so its corners keep their names
(``top-left`` stays the upper-left one) and a horizontal flip swaps the left and right
names: ``flip_idx`` is meaningful. Truth is in displayed pixels; ``write`` can store a
file sideways behind an EXIF tag (as ``sample_images``) so only code applying the tag
finds the corners where the truth says.

``tiny_pose_model()`` is ``yolo11n-pose.yaml`` trained from random weights on these
images by ``model_cache`` (once per machine, about a minute on 2 cores).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from tests.support import model_cache
from tests.support.model_cache import cached_metrics, cached_model, fit
from tests.support.sample_images import STORE_FOR_ORIENTATION

KEYPOINTS = ("top-left", "top-right", "bottom-right", "bottom-left")
FLIP_IDX = [1, 0, 3, 2]  # a horizontal flip swaps left and right
CLASS = "square"
SIZE = (128, 96)  # displayed width, height of generated images
MAX_TILT = 25.0
Point = tuple[float, float]

RECIPE = {"arch": "yolo11n-pose.yaml", "n_train": 96, "n_val": 16, "seed": 0, "imgsz": 128, "epochs": 20,
          "batch": 8, "nbs": 8, "warmup_epochs": 1, "train_seed": 0}


@dataclass(frozen=True)
class PoseSample:
    """One written image: its file, displayed size and the 4 corners (displayed pixels) of each square."""

    path: Path
    width: int
    height: int
    squares: tuple[tuple[Point, ...], ...]


def tiny_pose_model() -> Path:
    """Path of the cached pose checkpoint (class ``square``, keypoints ``KEYPOINTS``); trains on first use."""
    return cached_model("tiny-pose", RECIPE, "tests.support.tiny_pose:train")


def tiny_pose_metrics() -> dict:
    return cached_metrics(tiny_pose_model())


def square(cx: float, cy: float, side: float, degrees: float) -> tuple[Point, ...]:
    """Corners top-left, top-right, bottom-right, bottom-left of a square turned ``degrees`` clockwise."""
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    half = side / 2
    return tuple((cx + dx * cos - dy * sin, cy + dx * sin + dy * cos)
                 for dx, dy in ((-half, -half), (half, -half), (half, half), (-half, half)))


def draw(seed: int, size: tuple[int, int] = SIZE, count: int = 1) -> tuple[Image.Image, list[tuple[Point, ...]]]:
    """Up to ``count`` non-overlapping tilted squares wholly inside a grey image (top-left corner marked)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (110, 110, 110))
    pen = ImageDraw.Draw(image)
    squares: list[tuple[Point, ...]] = []
    for _ in range(count * 30):
        if len(squares) == count:
            break
        side = rng.uniform(0.3, 0.55) * min(size) * (1.0 if count == 1 else 0.8)
        reach = side * math.sqrt(2) / 2 + 2
        cx, cy = rng.uniform(reach, size[0] - reach), rng.uniform(reach, size[1] - reach)
        if any(math.dist((cx, cy), _centre(s)) < 2 * reach for s in squares):
            continue
        corners = square(cx, cy, side, rng.uniform(-MAX_TILT, MAX_TILT))
        pen.polygon(corners, fill=(230, 200, 40))
        squares.append(corners)
    return image, squares


def write(folder: Path, seed: int, orientation: int = 1, size: tuple[int, int] = SIZE, count: int = 1,
          name: str | None = None) -> PoseSample:
    """Draw and save a JPEG whose EXIF ``orientation`` turns the stored pixels back into the drawing."""
    folder.mkdir(parents=True, exist_ok=True)
    displayed, squares = draw(seed, size, count)
    transpose = STORE_FOR_ORIENTATION[orientation]
    stored = displayed.transpose(transpose) if transpose is not None else displayed
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    path = folder / (name or f"pose-{seed:04d}-o{orientation}.jpg")
    stored.save(path, quality=95, exif=exif.tobytes())
    return PoseSample(path, displayed.width, displayed.height, tuple(squares))


def pose_row(corners: tuple[Point, ...], width: int, height: int, cls: int = 0) -> str:
    """``c cx cy w h x1 y1 2 ... x4 y4 2`` relative to the displayed image: a square's pose label row."""
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    box = ((min(xs) + max(xs)) / 2 / width, (min(ys) + max(ys)) / 2 / height, (max(xs) - min(xs)) / width,
           (max(ys) - min(ys)) / height)
    return f"{cls} " + " ".join(f"{v:.6f}" for v in box) + "".join(f" {x / width:.6f} {y / height:.6f} 2"
                                                                    for x, y in corners)


def write_dataset(root: Path, n_train: int, n_val: int, seed: int = 0) -> Path:
    """An Ultralytics pose dataset of generated squares; returns its data.yaml."""
    return model_cache.write_dataset(root, n_train, n_val, seed, _sample, {
        "kpt_shape": [len(KEYPOINTS), 3], "flip_idx": FLIP_IDX, "names": {0: CLASS}})


def _sample(folder: Path, seed: int) -> tuple[str, list[str]]:
    sample = write(folder, seed)
    return sample.path.stem, [pose_row(s, sample.width, sample.height) for s in sample.squares]


def train(recipe: dict, work: Path) -> Path:
    """model_cache's builder: train, then record holdout pose mAP in ``work/metrics.json``."""
    data = write_dataset(work / "data", recipe["n_train"], recipe["n_val"], recipe["seed"])
    best, seconds, metrics = fit(recipe, data, work)
    (work / "metrics.json").write_text(json.dumps({"box_map50": float(metrics.box.map50),
                                                   "pose_map50": float(metrics.pose.map50),
                                                   "pose_map50_95": float(metrics.pose.map),
                                                   "train_seconds": seconds, "recipe": recipe}))
    return best


def _centre(corners: tuple[Point, ...]) -> Point:
    return sum(x for x, _ in corners) / len(corners), sum(y for _, y in corners) / len(corners)
