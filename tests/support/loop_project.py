"""A generated project with what makes labeling hard, for the labeling-loop benchmark and its test.

Three classes: ``square`` (rectangles, aspect 1:3 to 3:1), ``circle`` (ellipses, same aspects)
and ``triangle``. The cached shapes model (``tests/support/trained_model.py``) knows the first
two from upright squares and circles only and never saw a triangle, as a COCO model meets a
new project. Objects run from ``min_side`` (12 px) to a third of the image; a third of the
images are crowded (up to 12 objects, touching allowed); the rest hold 1 to 5 apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from tests.support.edit_count import Box

CLASSES = ("square", "circle", "triangle")
LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="square"/><Label value="circle"/><Label value="triangle"/>
  </RectangleLabels>
</View>"""
COLORS = ((220, 40, 40), (40, 90, 220), (30, 160, 60), (230, 160, 20), (120, 60, 160))


@dataclass(frozen=True)
class LoopImage:
    """One generated image on disk and its true boxes."""

    path: Path
    width: int
    height: int
    truth: tuple[Box, ...]


def draw(seed: int, size: int = 160, min_side: int = 12) -> tuple[Image.Image, list[Box]]:
    """An image with its boxes; the same seed gives the same image."""
    rng = random.Random(seed)
    img = Image.new("RGB", (size, size), tuple(rng.randrange(200, 256) for _ in range(3)))  # type: ignore[arg-type]
    pen = ImageDraw.Draw(img)
    for _ in range(rng.randrange(5, 15)):  # clutter the model must ignore
        x, y = rng.randrange(size), rng.randrange(size)
        pen.line((x, y, x + rng.randrange(-30, 30), y + rng.randrange(-30, 30)),
                 fill=tuple(rng.randrange(120, 200) for _ in range(3)), width=1)
    crowded = rng.random() < 1 / 3
    count, gap = (rng.randrange(6, 13), 0) if crowded else (rng.randrange(1, 6), 4)
    largest = (min_side + size // 4) if crowded else size // 3
    boxes: list[Box] = []
    for _ in range(count):
        box = _place(rng, boxes, size, min_side, largest, gap)
        if box is not None:
            _paint(pen, rng, box)
            boxes.append(box)
    return img, boxes


def _place(rng: random.Random, boxes: list[Box], size: int, min_side: int, largest: int, gap: int) -> Box | None:
    """A box of random class, size and aspect that keeps ``gap`` px from the others (0: may touch)."""
    label = rng.choice(CLASSES)
    for _attempt in range(30):
        side = rng.uniform(min_side, largest)
        aspect = 1.0 if label == "triangle" else rng.choice((1.0, 1.0, rng.uniform(1 / 3, 3)))
        w, h = max(min_side, side * aspect ** 0.5), max(min_side, side / aspect ** 0.5)
        w, h = min(w, size - 2), min(h, size - 2)
        x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        box = Box(label, round(x1), round(y1), round(x1 + w), round(y1 + h))
        if all(_apart(box, other, gap) for other in boxes):
            return box
    return None


def _apart(a: Box, b: Box, gap: int) -> bool:
    return a.x2 + gap <= b.x1 or b.x2 + gap <= a.x1 or a.y2 + gap <= b.y1 or b.y2 + gap <= a.y1


def _paint(pen: ImageDraw.ImageDraw, rng: random.Random, box: Box) -> None:
    color = rng.choice(COLORS)
    corners = (box.x1, box.y1, box.x2 - 1, box.y2 - 1)  # PIL draws both ends: the shape fills the box exactly
    if box.label == "square":
        pen.rectangle(corners, fill=color)
    elif box.label == "circle":
        pen.ellipse(corners, fill=color)
    else:
        pen.polygon([((box.x1 + box.x2) / 2, box.y1), (box.x1, box.y2 - 1), (box.x2 - 1, box.y2 - 1)], fill=color)


def write_images(folder: Path, count: int, seed: int, size: int = 160, min_side: int = 12) -> list[LoopImage]:
    """``count`` images ``img-<seed + i>.jpg`` in ``folder`` (quality 95, no chroma subsampling: 12 px edges)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(count):
        img, boxes = draw(seed + i, size, min_side)
        path = folder / f"img-{seed + i}.jpg"
        img.save(path, quality=95, subsampling=0)
        images.append(LoopImage(path, size, size, tuple(boxes)))
    return images


def truth_result(image: LoopImage) -> list[dict]:
    """The true boxes as a Label Studio annotation result (percent of the image)."""
    return [{"from_name": "label", "to_name": "image", "type": "rectanglelabels",
             "original_width": image.width, "original_height": image.height, "image_rotation": 0,
             "value": {"x": 100 * b.x1 / image.width, "y": 100 * b.y1 / image.height,
                       "width": 100 * (b.x2 - b.x1) / image.width, "height": 100 * (b.y2 - b.y1) / image.height,
                       "rotation": 0, "rectanglelabels": [b.label]}} for b in image.truth]


def boxes_of(result: list[dict], width: int, height: int) -> list[Box]:
    """A Label Studio result's rectangles back in pixels (what the annotator sees as pre-labels)."""
    boxes = []
    for region in result:
        if region.get("type") != "rectanglelabels":
            continue
        v = region["value"]
        x1, y1 = v["x"] * width / 100, v["y"] * height / 100
        boxes.append(Box(v["rectanglelabels"][0], x1, y1, x1 + v["width"] * width / 100,
                         y1 + v["height"] * height / 100))
    return boxes
