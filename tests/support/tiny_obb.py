"""A tiny obb model trained on generated rotated rectangles (``rotated_shapes``), cached per machine.

Classes ``red`` (0) and ``blue`` (1), told apart by colour; trained at 128 px, not 640, so
serving at the checkpoint's own size is what the tests check.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import model_cache, rotated_shapes
from tests.support.model_cache import cached_metrics, cached_model, fit

NAMES = ("red", "blue")
RECIPE = {"arch": "yolo11n-obb.yaml", "n_train": 96, "n_val": 16, "seed": 0, "imgsz": 128, "epochs": 20,
          "batch": 8, "nbs": 8, "warmup_epochs": 1, "train_seed": 0}


def tiny_obb_model() -> Path:
    """Path of the cached checkpoint (trains it on first use, about a minute on 2 cores)."""
    return cached_model("tiny-obb", RECIPE, "tests.support.tiny_obb:train")


def tiny_obb_metrics() -> dict:
    return cached_metrics(tiny_obb_model())


def write_dataset(root: Path, n_train: int, n_val: int, seed: int = 0) -> Path:
    """An Ultralytics obb dataset of generated rotated rectangles; returns its data.yaml."""
    return model_cache.write_dataset(root, n_train, n_val, seed, _sample, {"names": dict(enumerate(NAMES))})


def _sample(folder: Path, seed: int) -> tuple[str, list[str]]:
    sample = rotated_shapes.write(folder, seed)
    return sample.path.stem, [rotated_shapes.obb_row(cls, box, sample.width, sample.height)
                              for cls, box in sample.objects]


def train(recipe: dict, work: Path) -> Path:
    """model_cache's builder: train, then record holdout mAP in ``work/metrics.json``."""
    data = write_dataset(work / "data", recipe["n_train"], recipe["n_val"], recipe["seed"])
    best, seconds, metrics = fit(recipe, data, work)
    (work / "metrics.json").write_text(json.dumps({"map50": float(metrics.box.map50),
                                                   "map50_95": float(metrics.box.map),
                                                   "train_seconds": seconds, "recipe": recipe}))
    return best
