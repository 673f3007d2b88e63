"""Generated images of three visually distinct classes, and a tiny classify model trained on them.

``circle`` (blue), ``square`` (red), ``triangle`` (green): one filled shape on grey noise,
its size, place and the image's sides drawn at random, so a model must look at colour or
shape, and serving must resize non-square images the way Ultralytics does. The model
(yolo11n-cls.yaml, 64 px, not 640) is trained once per machine by ``model_cache``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from tests.support.model_cache import cached_metrics, cached_model, fit

NAMES = ("circle", "square", "triangle")  # sorted, as Ultralytics numbers class folders
COLOURS = {"circle": (40, 70, 220), "square": (220, 40, 40), "triangle": (40, 190, 60)}
RECIPE = {"arch": "yolo11n-cls.yaml", "per_class": 30, "val_per_class": 6, "seed": 0, "imgsz": 64, "epochs": 15,
          "batch": 16, "nbs": 16, "warmup_epochs": 1, "train_seed": 0}


def tiny_classify_model() -> Path:
    """Path of the cached checkpoint (trains it on first use, well under a minute on 2 cores)."""
    return cached_model("tiny-classify", RECIPE, "tests.support.tiny_classify:train")


def tiny_classify_metrics() -> dict:
    return cached_metrics(tiny_classify_model())


def class_of(seed: int) -> str:
    """The class image ``seed`` shows: classes take turns, so any run of seeds is balanced."""
    return NAMES[seed % len(NAMES)]


def draw(seed: int, label: str | None = None, size: tuple[int, int] | None = None) -> Image.Image:
    """One RGB image of ``label`` (default ``class_of(seed)``) on noise; sides 80..160 px unless ``size``."""
    rng = random.Random(seed)
    label = label or class_of(seed)
    width, height = size or (rng.randint(80, 160), rng.randint(80, 160))
    noise = np.random.default_rng(seed).normal(128, 30, (height, width, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(noise, "RGB")
    side = rng.uniform(0.35, 0.7) * min(width, height)
    left, top = rng.uniform(0, width - side), rng.uniform(0, height - side)
    pen = ImageDraw.Draw(image)
    colour = COLOURS[label]
    if label == "circle":
        pen.ellipse((left, top, left + side, top + side), fill=colour)
    elif label == "square":
        pen.rectangle((left, top, left + side, top + side), fill=colour)
    else:
        pen.polygon([(left + side / 2, top), (left + side, top + side), (left, top + side)], fill=colour)
    return image


def write_class_folders(root: Path, parts: dict[str, tuple[int, int]]) -> Path:
    """``root/<split>/<class>/<seed>.png`` for each split's ``(first seed, count)``; returns ``root``."""
    for split, (first, count) in parts.items():
        for label in NAMES:
            (root / split / label).mkdir(parents=True, exist_ok=True)
        for seed in range(first, first + count):
            draw(seed).save(root / split / class_of(seed) / f"{seed}.png")
    return root


def choices_config(multiple: bool = False, extra: str = "", labels: tuple[str, ...] = NAMES) -> str:
    """A label config with one <Choices> control ``class`` on the image ``image``."""
    choice = ' choice="multiple"' if multiple else ""
    options = "".join(f'<Choice value="{label}"/>' for label in labels)
    return (f'<View><Image name="image" value="$image"/><Choices name="class" toName="image"{choice} {extra}>'
            f"{options}</Choices></View>")


def choices_result(labels: list[str], from_name: str = "class") -> dict[str, Any]:
    """One choices result as Label Studio stores it."""
    return {"id": f"c-{'-'.join(labels)}", "from_name": from_name, "to_name": "image", "type": "choices",
            "origin": "manual", "value": {"choices": labels}}


def write_project(doc_root: Path, count: int, seed: int = 7000, first_id: int = 1, folder: str = "classes"
                  ) -> list[dict[str, Any]]:
    """``count`` tasks annotated with their class, images (PNG) under ``doc_root/folder``; class in ``_truth``."""
    (doc_root / folder).mkdir(parents=True, exist_ok=True)
    tasks = []
    for i in range(count):
        name = f"{folder}/img-{seed + i}.png"
        draw(seed + i).save(doc_root / name)
        task_id = first_id + i
        tasks.append({"id": task_id, "data": {"image": f"/data/local-files/?d={name}"},
                      "annotations": [{"id": 10 * task_id, "result": [choices_result([class_of(seed + i)])],
                                       "was_cancelled": False, "ground_truth": False,
                                       "created_at": "2025-01-01T00:00:00Z"}],
                      "_truth": class_of(seed + i)})
    return tasks


def train(recipe: dict, work: Path) -> Path:
    """model_cache's builder: train on class folders, then record top-1 on the val folder in ``metrics.json``."""
    per_class, val_per_class = recipe["per_class"] * len(NAMES), recipe["val_per_class"] * len(NAMES)
    data = write_class_folders(work / "data", {"train": (recipe["seed"], per_class),
                                               "val": (recipe["seed"] + 100_000, val_per_class)})
    best, seconds, metrics = fit(recipe, data, work)
    (work / "metrics.json").write_text(json.dumps({"top1": float(metrics.top1), "train_seconds": seconds,
                                                   "recipe": recipe}))
    return best
