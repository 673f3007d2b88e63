"""Fitting a candidate (``fit``): Ultralytics' trainer, with progress, threads and a clean output folder.

How a holdout is predicted the way the service would is the media's (``dataset.BUILDERS``:
``holdout`` for images, ``video_scoring`` for a video's frames).

Imported only in the training process: the web workers never load the trainer.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ..config import Settings
from ..core.durable import write_json
from ..core.registry import RUN_FILES
from ..serving.detector import pick_device

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
# Ultralytics' plots kept with the run for the status page (its batch mosaics and PR curves are left behind).
# plots=True costs about 2-3 s per run on 2 CPU cores (labels.jpg, the final validation's plots), not per epoch.
KEPT_PLOTS = ("results.png", "confusion_matrix.png", "confusion_matrix_normalized.png")
MAX_CURVE_POINTS = 400  # past this the curve keeps every other point: the file stays a few kB whatever TRAIN_EPOCHS


def training_threads(settings: Settings) -> int:
    """TRAIN_THREADS, or every core but one: the web workers keep a core for /predict."""
    return settings.train_threads if settings.train_threads > 0 else max(1, (os.cpu_count() or 1) - 1)


def _device(settings: Settings) -> str:
    device = pick_device(settings.device)
    return device.replace("cuda:", "") if device.startswith("cuda") else device  # Ultralytics wants "0"


def fit(start: str, labels: list[str], data_yaml: Path, work: Path, settings: Settings,
        progress: Progress, pretrained: str | None = None) -> Path:
    """Train from ``start`` (checkpoint or architecture yaml, with ``pretrained`` weights); returns the best checkpoint.

    The data's class names (the project's labels) become the model's: a start with other
    classes keeps its backbone and box regression and gets a fresh class head. ``data_yaml``
    is the dataset's folder for a classify run.
    """
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(training_threads(settings))  # after the import, which sets its own
    _local_font()
    model = YOLO(start)
    if pretrained:
        model.load(pretrained)  # the layers the two architectures share (backbone, neck)
    if start.endswith(".pt") and [str(model.names[i]) for i in sorted(model.names)] != labels:
        _fresh_class_head(model.model, settings.train_imgsz)
    started = time.time()

    def on_epoch_end(trainer: Any) -> None:
        epoch, epochs = trainer.epoch + 1, trainer.epochs
        elapsed = time.time() - started
        progress({"epoch": epoch, "epochs": epochs, "elapsed_s": round(elapsed, 1),
                  "remaining_s": round(elapsed / epoch * (epochs - epoch), 1), "loss": _loss(trainer)})
        # TRAIN_TIMEOUT is job.Watchdog's: it bounds the whole run, so it always fires before a check here could

    model.add_callback("on_train_epoch_end", on_epoch_end)
    kept = work.parent.parent / RUN_FILES / work.name  # work is <project>/runs/<run_id> (train.run_once)
    curve = EpochCurve(kept / "curves.json")
    model.add_callback("on_train_epoch_end", curve.trained)
    model.add_callback("on_fit_epoch_end", curve.validated)
    model.train(data=str(data_yaml), epochs=settings.train_epochs, imgsz=settings.train_imgsz,
                batch=settings.train_batch, patience=settings.train_patience, device=_device(settings),
                workers=0, plots=True, verbose=False, project=str(work), name="fit", exist_ok=True,
                seed=0, deterministic=False, amp=_device(settings) not in ("cpu", "mps"),
                # Every batch an optimizer step: with Ultralytics' nominal 64 a project of 30 images
                # would step once every two epochs, and a short first run would barely learn.
                **({"nbs": settings.train_batch} if settings.train_batch > 0 else {}))
    keep_plots(work / "fit", kept)
    weights = work / "fit" / "weights"
    best = weights / "best.pt"
    return best if best.is_file() else weights / "last.pt"


class EpochCurve:
    """Loss and validation scores per epoch in ``curves.json``, rewritten each epoch for the status page."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.points: list[dict[str, Any]] = []
        self._trained: dict[str, Any] | None = None  # the epoch whose validation is still to come

    def trained(self, trainer: Any) -> None:
        self._trained = {"epoch": trainer.epoch + 1, "loss": _loss(trainer)}

    def validated(self, trainer: Any) -> None:
        """Ultralytics also calls this after its final validation of best.pt: no epoch trained then, nothing added."""
        if self._trained is None:
            return
        self.points.append({**self._trained, **_validation(getattr(trainer, "metrics", None) or {})})
        self._trained = None
        if len(self.points) > MAX_CURVE_POINTS:
            self.points = self.points[::2]
        try:
            write_json(self.path, {"epochs": trainer.epochs, "points": self.points})
        except OSError as exc:  # a full disk must not fail the run for a chart
            log.warning("could not write %s: %s", self.path, exc)


def _validation(metrics: dict[str, Any]) -> dict[str, float]:
    """mAP50, mAP50-95 (or top-1) and the summed validation loss from Ultralytics' per-epoch metrics.

    Keys look like ``metrics/mAP50-95(B)``; a segment or pose run lists (B) first and its own (M)/(P)
    second, so the last one of each name is the task's own.
    """
    names = {"mAP50-95": "map50_95", "mAP50": "map50", "accuracy_top1": "top1"}
    found: dict[str, float] = {}
    val_loss = [float(v) for k, v in metrics.items() if k.startswith("val/") and k.endswith("loss")]
    for key, value in metrics.items():
        name = names.get(key.split("/")[-1].split("(")[0])
        if name and key.startswith("metrics/"):
            found[name] = round(float(value), 4)
    return {**found, **({"val_loss": round(sum(val_loss), 4)} if val_loss else {})}


def _local_font() -> None:
    """Give Ultralytics matplotlib's bundled DejaVu Sans for its plot labels and its dataset check.

    Without a cached Arial.ttf it asks GitHub for one (a HEAD with a 3 s timeout, then a download)
    for every plot it draws: a run must download nothing, nor wait on a firewall, for a label font.
    """
    from matplotlib import font_manager
    from ultralytics.data import utils as data_utils
    from ultralytics.utils import plotting

    font = Path(font_manager.findfont("DejaVu Sans"))
    for module in (plotting, data_utils):
        module.check_font = lambda name="Arial.ttf": font  # type: ignore[attr-defined]


def keep_plots(run_dir: Path, kept: Path) -> None:
    """Copy Ultralytics' results.png and confusion matrices beside the run's curves (the run folder is deleted)."""
    for name in KEPT_PLOTS:
        if (run_dir / name).is_file():
            kept.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / name, kept / name)


def _fresh_class_head(network: Any, imgsz: int) -> None:
    """Forget what the class outputs meant; with another class count Ultralytics re-creates them anyway.

    The initial bias is Ultralytics' prior for a new head (about 5 objects an image) counted
    on the grid of the size we train at, as its formula assumes 640 px grids: at 128 px a
    small run started 25 times too unsure and ended ranking its finds well with every score
    below the thresholds (pose, 6 epochs: F1 0-0.33 before, 0.89-1.0 after). It is capped
    at the prior of Ultralytics' coarsest 640 px grid: uncapped, the 0.24 a 128 px coarse
    cell starts at pushed the shared layers hard enough to lose keypoint accuracy (an e2e
    fine-tune found 2-6 of 16 corners instead of 8-15).
    """
    head = network.model[-1]
    if not hasattr(head, "cv3"):  # a classify head: Ultralytics re-creates its linear layer for other classes
        return
    ceiling = 5 / head.nc / (640 / float(max(head.stride))) ** 2
    for branch, stride in zip(head.cv3, head.stride):
        last = branch[-1]
        last.reset_parameters()
        last.bias.data[:] = math.log(min(5 / head.nc / (imgsz / float(stride)) ** 2, ceiling))


def _loss(trainer: Any) -> float | None:
    """Mean training loss of the epoch, summed over its parts (box, cls, dfl)."""
    import torch

    tloss = getattr(trainer, "tloss", None)
    if tloss is None:
        return None
    parts = tloss.values() if isinstance(tloss, dict) else [tloss]
    return round(float(sum(float(torch.as_tensor(p).sum()) for p in parts)), 4)
