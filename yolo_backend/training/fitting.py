"""The two model calls of a run: fit a candidate, and predict the holdout the way the service would.

Imported only in the training process: the web workers never load the trainer.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import convert, label_config
from ..config import Settings
from ..detector import pick_device
from ..label_config import ControlSpec
from . import scoring
from .dataset import Example

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
SCORING_CONF = 0.001  # as `yolo val`: every box counts for mAP; thresholds are applied afterwards


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
        # TRAIN_TIMEOUT is job.Watchdog's: it bounds the whole run, so it always fires before a check here could

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


def holdout_images(examples: Sequence[Example], batch: int = 16) -> Iterator[list[tuple[Example, np.ndarray]]]:
    """The holdout's upright images as BGR arrays, a batch at a time (a big holdout never sits in memory)."""
    import cv2

    for start in range(0, len(examples), batch):
        chunk = examples[start:start + batch]
        yield [(example, cv2.imread(str(example.image), cv2.IMREAD_COLOR)) for example in chunk]


def truths(example: Example, width: int, height: int) -> tuple[scoring.Truth, ...]:
    """The annotation's YOLO lines as pixel boxes on the upright image."""
    found = []
    for line in example.lines:
        box = convert.parse_yolo_line(line)
        found.append(scoring.Truth(box.class_id, ((box.cx - box.w / 2) * width, (box.cy - box.h / 2) * height,
                                                  (box.cx + box.w / 2) * width, (box.cy + box.h / 2) * height)))
    return tuple(found)


def no_model(examples: Sequence[Example]) -> list[scoring.Image]:
    """What an annotator gets without weights: nothing, on every holdout image."""
    out = []
    for chunk in holdout_images(examples):
        out += [scoring.Image((), truths(example, pixels.shape[1], pixels.shape[0])) for example, pixels in chunk]
    return out


def predict_holdout(checkpoint: Path, examples: Sequence[Example], spec: ControlSpec, settings: Settings
                    ) -> list[scoring.Image]:
    """Run ``checkpoint`` over the holdout as the service serves it, mapped to ``spec``'s labels.

    Same image size (IMGSZ, or the checkpoint's own under ``auto``), IoU and max_det as
    serving, and the same class -> label mapping (``predicted_values``, exact, case-folded),
    at a low confidence so that every threshold can be judged from one pass.
    """
    from ..detector import Detector, checkpoint_imgsz, load_ultralytics

    model = load_ultralytics(checkpoint)
    imgsz = settings.fixed_imgsz or checkpoint_imgsz(model)
    detector = Detector(model, device=pick_device(settings.device), imgsz=imgsz, iou=settings.iou,
                        max_det=settings.max_det, name=checkpoint.name)
    to_label = {name: index for index, name in enumerate(spec.labels)}
    mapping = {cls: to_label[label] for cls, label in label_config.map_classes(spec, detector.names).items()}
    out = []
    for chunk in holdout_images(examples):
        found = detector.detect([pixels for _, pixels in chunk], conf=SCORING_CONF)
        for (example, pixels), detections in zip(chunk, found):
            mapped = tuple(scoring.Found(mapping[d.class_id], d.score, d.box) for d in detections
                           if d.class_id in mapping)
            out.append(scoring.Image(mapped, truths(example, pixels.shape[1], pixels.shape[0])))
    return out
