"""The two Ultralytics calls of a run: fit a candidate, score a checkpoint on the holdout.

Imported only in the training process: the web workers never load the trainer.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import Settings
from ..detector import pick_device

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Scores:
    """Holdout scores; promotion compares ``map50_95`` first, then ``map50``."""

    map50_95: float
    map50: float

    def at_least(self, other: Scores) -> bool:
        return (self.map50_95, self.map50) >= (other.map50_95, other.map50)

    def to_json(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def training_threads(settings: Settings) -> int:
    """TRAIN_THREADS, or every core but one: the web workers keep a core for /predict."""
    return settings.train_threads if settings.train_threads > 0 else max(1, (os.cpu_count() or 1) - 1)


def _device(settings: Settings) -> str:
    device = pick_device(settings.device)
    return device.replace("cuda:", "") if device.startswith("cuda") else device  # Ultralytics wants "0"


def fit(start: str, labels: list[str], data_yaml: Path, work: Path, settings: Settings,
        progress: Progress) -> Path:
    """Train from ``start`` (checkpoint or architecture yaml); returns the best checkpoint.

    The data's class names (the project's labels) become the model's: a start with other
    classes keeps its backbone and box regression and gets a fresh class head.
    """
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(training_threads(settings))  # after the import, which sets its own
    model = YOLO(start)
    if start.endswith(".pt") and [str(model.names[i]) for i in sorted(model.names)] != labels:
        _fresh_class_head(model.model)
    started = time.time()

    def on_epoch_end(trainer: Any) -> None:
        epoch, epochs = trainer.epoch + 1, trainer.epochs
        elapsed = time.time() - started
        progress({"epoch": epoch, "epochs": epochs, "elapsed_s": round(elapsed, 1),
                  "remaining_s": round(elapsed / epoch * (epochs - epoch), 1), "loss": _loss(trainer)})
        if elapsed > settings.train_timeout:
            raise TimeoutError(f"the run took more than TRAIN_TIMEOUT={settings.train_timeout} s")

    model.add_callback("on_train_epoch_end", on_epoch_end)
    model.train(data=str(data_yaml), epochs=settings.train_epochs, imgsz=settings.train_imgsz,
                batch=settings.train_batch, patience=settings.train_patience, device=_device(settings),
                workers=0, plots=False, verbose=False, project=str(work), name="fit", exist_ok=True,
                seed=0, deterministic=False, amp=_device(settings) not in ("cpu", "mps"),
                # Every batch an optimizer step: with Ultralytics' nominal 64 a project of 30 images
                # would step once every two epochs, and a short first run would barely learn.
                **({"nbs": settings.train_batch} if settings.train_batch > 0 else {}))
    weights = work / "fit" / "weights"
    best = weights / "best.pt"
    return best if best.is_file() else weights / "last.pt"


def _fresh_class_head(network: Any) -> None:
    """Forget what the class outputs meant; with another class count Ultralytics re-creates them anyway.

    Same initial bias as Ultralytics gives a new head: a low prior that any class is present.
    """
    head = network.model[-1]
    for branch, stride in zip(head.cv3, head.stride):
        last = branch[-1]
        last.reset_parameters()
        last.bias.data[:] = math.log(5 / head.nc / (640 / float(stride)) ** 2)


def _loss(trainer: Any) -> float | None:
    """Mean training loss of the epoch, summed over its parts (box, cls, dfl)."""
    import torch

    tloss = getattr(trainer, "tloss", None)
    if tloss is None:
        return None
    parts = tloss.values() if isinstance(tloss, dict) else [tloss]
    return round(float(sum(float(torch.as_tensor(p).sum()) for p in parts)), 4)


def class_names(checkpoint: str | Path) -> list[str]:
    """The model's classes in index order (a yaml architecture has none that matter)."""
    from ultralytics import YOLO

    names = YOLO(str(checkpoint)).names
    return [str(names[i]) for i in sorted(names)]


def evaluate(checkpoint: Path, data_yaml: Path, work: Path, settings: Settings, name: str) -> Scores:
    """mAP50-95 and mAP50 of ``checkpoint`` on the dataset's holdout (its ``val`` split)."""
    from ultralytics import YOLO

    metrics = YOLO(str(checkpoint)).val(data=str(data_yaml), split="val", imgsz=settings.train_imgsz,
                                        batch=max(1, min(settings.train_batch, 16)), device=_device(settings),
                                        workers=0, plots=False, verbose=False, project=str(work), name=name,
                                        exist_ok=True)
    return Scores(float(metrics.box.map), float(metrics.box.map50))
