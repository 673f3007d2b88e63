"""Generated images of simple shapes with known boxes, for tests, the demo and benchmarks.

Nothing here downloads: a model that learns these two classes in a minute or two on a
CPU proves the whole loop (predict, annotate, train, promote) without any hub.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

CLASSES = ("square", "circle")
COLORS = ((220, 40, 40), (40, 90, 220), (30, 160, 60), (230, 160, 20))


@dataclass(frozen=True)
class Shape:
    """One drawn object: class index and pixel box (x1, y1, x2, y2)."""

    class_id: int
    box: tuple[int, int, int, int]

    @property
    def label(self) -> str:
        return CLASSES[self.class_id]


def draw_sample(seed: int, size: tuple[int, int] | None = None, max_shapes: int = 3,
                min_side: int = 40, max_side: int = 120) -> tuple[Image.Image, list[Shape]]:
    """An RGB image with 1..max_shapes non-overlapping squares/circles on a noisy background."""
    rng = random.Random(seed)
    width, height = size or (rng.randrange(256, 417, 32), rng.randrange(224, 353, 32))
    background = tuple(rng.randrange(200, 256) for _ in range(3))
    img = Image.new("RGB", (width, height), background)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randrange(10, 30)):  # clutter: thin lines the model must ignore
        x, y = rng.randrange(width), rng.randrange(height)
        draw.line((x, y, x + rng.randrange(-40, 40), y + rng.randrange(-40, 40)),
                  fill=tuple(rng.randrange(120, 200) for _ in range(3)), width=1)
    shapes: list[Shape] = []
    for _ in range(rng.randrange(1, max_shapes + 1)):
        side = rng.randrange(min_side, min(max_side, width // 2, height // 2) + 1)
        for _attempt in range(20):
            x1, y1 = rng.randrange(0, width - side), rng.randrange(0, height - side)
            box = (x1, y1, x1 + side, y1 + side)
            if all(_apart(box, s.box) for s in shapes):
                break
        else:
            continue
        class_id = rng.randrange(len(CLASSES))
        color = rng.choice(COLORS)
        if class_id == 0:
            draw.rectangle(box, fill=color)
        else:
            draw.ellipse(box, fill=color)
        shapes.append(Shape(class_id, box))
    return img, shapes


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int = 6) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def yolo_lines(shapes: list[Shape], width: int, height: int) -> list[str]:
    """``class cx cy w h`` lines, relative, as a YOLO label file holds them."""
    lines = []
    for s in shapes:
        x1, y1, x2, y2 = s.box
        lines.append(f"{s.class_id} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                     f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
    return lines


def write_yolo_dataset(root: Path, n_train: int, n_val: int, seed: int = 0) -> Path:
    """An Ultralytics-layout dataset (images/<split>, labels/<split>, data.yaml); returns data.yaml."""
    for split, count, offset in (("train", n_train, 0), ("val", n_val, 1_000_000)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, shapes = draw_sample(seed + offset + i)
            img.save(root / "images" / split / f"{i:05d}.jpg", quality=92)
            (root / "labels" / split / f"{i:05d}.txt").write_text("\n".join(yolo_lines(shapes, *img.size)) + "\n")
    data = root / "data.yaml"
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASSES))
    data.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return data
