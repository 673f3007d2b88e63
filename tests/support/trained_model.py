"""A yolov5nu trained on the synthetic shapes, built once per machine and reused.

Tests and benchmarks that need a model which really detects something call
``trained_shapes_model()``. Nothing is downloaded: the network starts from
``yolov5nu.yaml`` (random weights) and learns ``square`` and ``circle`` from
``tests.support.synthetic`` images. The result is cached under
``~/.cache/ls-yolo`` with a key derived from the recipe, so a changed recipe
trains a new file and an unchanged one is trained once; a file lock keeps two
processes (pytest-xdist, a benchmark beside a test run) from training it twice.
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

from tests.support.model_cache import cache_dir

# The recipe; any change gives a new cache key. Measured on 2 shared CPU cores (holdout mAP50):
# 192 px, batch 16, 10 epochs: 0.62 in 4.5 min; 256 px, batch 16, 9 epochs: 0.54 in 8 min;
# 192 px, batch 8, 15 epochs, 1 warm-up epoch: 0.66 in 10 min (4.3 min of CPU);
# 160 px, batch 8, 30 epochs (the first 20 with mosaic), 1 warm-up epoch: 0.995 (mAP50-95 0.93) in
# 11 min on a busy machine (6.2 min of CPU). Mosaic and the number of optimizer steps matter most:
# Ultralytics accumulates gradients up to a nominal batch of 64, so with nbs=8 every batch is a step,
# and 160 px, batch 8, 10 epochs reach 0.995 (mAP50-95 0.92) in 2.5 min of CPU.
RECIPE = {
    "arch": "yolov5nu.yaml",
    "n_train": 240,
    "n_val": 40,
    "seed": 0,
    "imgsz": 160,
    "epochs": 10,
    "batch": 8,
    "nbs": 8,  # an optimizer step per batch: 0.995 mAP50 in 10 epochs (30 epochs at Ultralytics' 64)
    "warmup_epochs": 1,
    "train_seed": 0,
}


def recipe_key(recipe: dict | None = None) -> str:
    """12 hex of the recipe's JSON: the cache file name changes whenever the recipe does."""
    text = json.dumps(recipe or RECIPE, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def trained_shapes_model(cache_root: Path | None = None) -> Path:
    """Path to a checkpoint detecting ``square`` (class 0) and ``circle`` (class 1); trains on first use."""
    root = Path(cache_root) if cache_root is not None else cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"trained-shapes-{recipe_key()}.pt"
    if target.is_file():
        return target
    with (root / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the second process waits here, then finds the file
        if not target.is_file():
            _train_into(target)
    return target


def _train_into(target: Path) -> None:
    """Train in a child process (Ultralytics changes global torch/random state), then publish atomically."""
    with tempfile.TemporaryDirectory(prefix="trained-shapes-") as work:
        script = Path(__file__).with_name("train_shapes_child.py")
        out = Path(work) / "model.pt"
        proc = subprocess.run([sys.executable, str(script), json.dumps(RECIPE), work, str(out)],
                              capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"training the shapes model failed (exit {proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        tmp = target.with_suffix(".pt.tmp")
        shutil.copyfile(out, tmp)
        metrics = Path(work) / "metrics.json"
        if metrics.is_file():
            shutil.copyfile(metrics, target.with_suffix(".json"))
        os.replace(tmp, target)  # readers see either no file or the whole file


def trained_shapes_metrics(cache_root: Path | None = None) -> dict:
    """Holdout metrics measured right after training (mAP50, mAP50-95, seconds)."""
    path = trained_shapes_model(cache_root).with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else {}
