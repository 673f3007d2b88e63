"""Generated photos of rotated rectangles with their true corners, some stored sideways behind an EXIF tag.

The truth is kept in displayed pixels (what the browser shows, and what Label Studio's
percent values and YOLO OBB rows refer to); a tagged file stores its pixels turned the
other way, so only code that applies the tag finds the rectangles where the truth says.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from tests.support.sample_images import STORE_FOR_ORIENTATION

COLOURS = ((220, 40, 40), (40, 90, 220))  # class 0 red, class 1 blue: learnable by colour
Corners = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class RotatedSample:
    """One written image: its file, the displayed size and (class, 4 corners in displayed pixels) per object."""

    path: Path
    width: int
    height: int
    objects: tuple[tuple[int, Corners], ...]


def corners(cx: float, cy: float, w: float, h: float, degrees: float) -> Corners:
    """A ``w x h`` rectangle turned ``degrees`` clockwise (image axes, y down) about its centre."""
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return tuple((cx + dx * cos - dy * sin, cy + dx * sin + dy * cos)
                 for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)))


def draw(seed: int, size: tuple[int, int] = (320, 256), count: int = 2
         ) -> tuple[Image.Image, list[tuple[int, Corners]]]:
    """Up to ``count`` non-overlapping rotated rectangles, wholly inside the image, on a grey background."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (128, 128, 128))
    pen = ImageDraw.Draw(image)
    objects: list[tuple[int, Corners]] = []
    for _ in range(count * 20):
        if len(objects) == count:
            break
        w, h = rng.uniform(50, 110), rng.uniform(20, 45)
        reach = math.hypot(w, h) / 2 + 2
        cx, cy = rng.uniform(reach, size[0] - reach), rng.uniform(reach, size[1] - reach)
        if any(math.dist((cx, cy), _centre(c)) < reach + 60 for _, c in objects):
            continue
        cls, box = rng.randrange(2), corners(cx, cy, w, h, rng.uniform(0, 180))
        pen.polygon(box, fill=COLOURS[cls])
        objects.append((cls, box))
    return image, objects


def write(folder: Path, seed: int, orientation: int = 1, size: tuple[int, int] = (320, 256)) -> RotatedSample:
    """Draw and save a JPEG whose EXIF ``orientation`` turns the stored pixels back into the drawing."""
    folder.mkdir(parents=True, exist_ok=True)
    displayed, objects = draw(seed, size)
    transpose = STORE_FOR_ORIENTATION[orientation]
    stored = displayed.transpose(transpose) if transpose is not None else displayed
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    path = folder / f"rot-{seed:04d}-o{orientation}.jpg"
    stored.save(path, quality=95, exif=exif.tobytes())
    return RotatedSample(path, displayed.width, displayed.height, tuple(objects))


def obb_row(cls: int, box: Corners, width: int, height: int) -> str:
    """The YOLO OBB label row of one object: class and 4 corners relative to the displayed image."""
    return f"{cls} " + " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in box)


def _centre(box: Corners) -> tuple[float, float]:
    return sum(x for x, _ in box) / 4, sum(y for _, y in box) / 4
