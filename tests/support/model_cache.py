"""Tiny models per task, trained on data the tests generate, built once per machine and reused.

``cached_model("pose-shapes", RECIPE, "tests.support.tiny_pose:train")`` returns the path
of a checkpoint trained by that function from that recipe. The file lives under
``~/.cache/ls-yolo`` (``$TEST_CACHE``) with a key derived from the recipe (a changed recipe trains a new
file); a file lock keeps two processes from training it twice; training runs in a child
process, so Ultralytics' changes to torch threads, seeds and callbacks never leak into the
test process. The builder is ``def train(recipe: dict, work: Path) -> Path`` (the best
checkpoint, under ``work``); it may write ``work/metrics.json``, kept beside the model.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

DEFAULT_CACHE = Path.home() / ".cache" / "ls-yolo"


def cache_dir() -> Path:
    """Where the tests keep what they build once per machine: ``$TEST_CACHE``, default ``~/.cache/ls-yolo``."""
    return Path(os.environ.get("TEST_CACHE") or DEFAULT_CACHE).expanduser()
ROOT = Path(__file__).resolve().parents[2]


def recipe_key(recipe: dict, builder: str) -> str:
    text = json.dumps({"recipe": recipe, "builder": builder}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cached_model(name: str, recipe: dict, builder: str, cache_root: Path | None = None) -> Path:
    """The checkpoint ``builder`` trains from ``recipe``; trained on first use (in a child process)."""
    root = Path(cache_root) if cache_root is not None else cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-{recipe_key(recipe, builder)}.pt"
    if target.is_file():
        return target
    with (root / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the second process waits here, then finds the file
        if not target.is_file():
            _train_into(target, recipe, builder)
    return target


def write_dataset(root: Path, n_train: int, n_val: int, seed: int, sample: Callable[[Path, int], tuple[str, list[str]]],
                  fields: dict[str, Any]) -> Path:
    """An Ultralytics dataset (images/<split>, labels/<split>, data.yaml with ``fields``) of generated images.

    ``sample(folder, seed)`` writes one image into ``folder`` and returns its stem and label rows;
    val images come from seeds 100,000 further on, so they never repeat a training image.
    """
    for split, count, first in (("train", n_train, seed), ("val", n_val, seed + 100_000)):
        images, labels = root / "images" / split, root / "labels" / split
        labels.mkdir(parents=True, exist_ok=True)
        for index in range(first, first + count):
            stem, rows = sample(images, index)
            (labels / f"{stem}.txt").write_text("".join(f"{row}\n" for row in rows))
    data = root / "data.yaml"
    data.write_text(json.dumps({"path": str(root), "train": "images/train", "val": "images/val", **fields}))
    return data


def fit(recipe: dict, data: Path, work: Path) -> tuple[Path, float, Any]:
    """The builders' common step: train ``recipe["arch"]`` on ``data`` on the CPU, then validate the best weights.

    Returns (best checkpoint, training seconds, Ultralytics' validation metrics). The recipe
    holds imgsz, epochs, batch, nbs, warmup_epochs and train_seed.
    """
    import time

    from ultralytics import YOLO

    started = time.perf_counter()
    YOLO(recipe["arch"]).train(data=str(data), imgsz=recipe["imgsz"], epochs=recipe["epochs"], batch=recipe["batch"],
                               nbs=recipe["nbs"], warmup_epochs=recipe["warmup_epochs"], seed=recipe["train_seed"],
                               device="cpu", workers=0, plots=False, val=False, amp=False, deterministic=False,
                               verbose=False, project=str(work / "runs"), name="train", exist_ok=True)
    seconds = time.perf_counter() - started
    weights = work / "runs" / "train" / "weights"
    best = weights / "best.pt" if (weights / "best.pt").is_file() else weights / "last.pt"
    metrics = YOLO(str(best)).val(data=str(data), imgsz=recipe["imgsz"], device="cpu", workers=0, plots=False,
                                  verbose=False, project=str(work / "runs"), name="val")
    return best, round(seconds, 1), metrics


def cached_metrics(model: Path) -> dict:
    path = model.with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else {}


def _train_into(target: Path, recipe: dict, builder: str) -> None:
    with tempfile.TemporaryDirectory(prefix=f"{target.stem}-") as work:
        env = {**os.environ, "YOLO_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-m", "tests.support.model_cache", builder, json.dumps(recipe), work],
                              capture_output=True, text=True, timeout=3600, cwd=ROOT, env=env)
        out = Path(work) / "model.pt"
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"training {target.name} failed (exit {proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        tmp = target.with_suffix(".pt.tmp")
        shutil.copyfile(out, tmp)
        metrics = Path(work) / "metrics.json"
        if metrics.is_file():
            shutil.copyfile(metrics, target.with_suffix(".json"))
        os.replace(tmp, target)  # readers see either no file or the whole file


def _child(builder: str, recipe: dict, work: Path) -> None:
    import importlib

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    module, function = builder.split(":")
    best = getattr(importlib.import_module(module), function)(recipe, work)
    shutil.copyfile(best, work / "model.pt")


if __name__ == "__main__":
    _child(sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3]))
