"""The training recipe, top to bottom: collect, write dataset, train, evaluate, publish.

``run_once`` never raises: whatever happens ends as a named state in the project's
status file (promoted, rejected, not_started or failed, with the reason). It runs in
the training process only (local runner child or ``rq worker``), never in a web worker.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings
from . import state
from .collect import LABEL_STUDIO, load_project
from .dataset import Dataset, build_dataset
from .registry import Registry, project_dir
from .state import RunRecord
from .status import StatusBook

if TYPE_CHECKING:
    from .fitting import Scores

log = logging.getLogger("yolo_backend.training")


def run_once(settings: Settings, project: str, run: RunRecord, source: str = LABEL_STUDIO) -> RunRecord:
    """Execute one run of ``project`` and record how it ended."""
    book = StatusBook(settings.model_dir_path, project)
    book.save(state.start(run))
    work = project_dir(settings.model_dir_path, project) / "runs" / run.run_id
    try:
        _recipe(settings, project, run, source, work, book)
    except Exception as exc:  # any failure is a recorded state, never a crash of the worker loop
        log.exception("project %s: run %s failed", project, run.run_id)
        state.fail(run, f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # datasets and Ultralytics outputs are per run
    book.save(run)
    log.info("project %s: run %s %s: %s", project, run.run_id, run.state.value, run.reason)
    return run


def _recipe(settings: Settings, project: str, run: RunRecord, source: str, work: Path, book: StatusBook) -> None:
    # collect: Label Studio is the source of truth (the webhook body is never used)
    data = load_project(settings, project, source)

    # write dataset: upright images, YOLO boxes, deterministic holdout
    dataset = build_dataset(work / "dataset", data.tasks, data.label_config, settings)
    labeled = len(dataset.train) + len(dataset.holdout)
    run.metrics.update(train_images=len(dataset.train), holdout_images=len(dataset.holdout),
                       skipped_tasks=len(dataset.skipped), labels=dataset.labels)
    if labeled < settings.train_min_images:
        state.not_started(run, f"need {settings.train_min_images - labeled} more labeled images "
                               f"({labeled} of TRAIN_MIN_IMAGES={settings.train_min_images})")
        return

    from . import fitting  # imports torch/Ultralytics: only once there is something to train

    # train: from the served model of these labels if there is one, else from the base
    registry = Registry(settings.model_dir_path, project)
    served = _served_checkpoint(settings, registry)
    start = str(served) if served else _base_start(settings)
    run.metrics["started_from"] = Path(start).name

    def progress(info: dict) -> None:
        run.progress = info
        book.save(run)
        log.info("project %s: run %s epoch %d/%d loss %s elapsed %.0f s remaining %.0f s", project, run.run_id,
                 info["epoch"], info["epochs"], info["loss"], info["elapsed_s"], info["remaining_s"])

    candidate = fitting.fit(start, dataset.labels, dataset.data_yaml, work, settings, progress)

    # evaluate: candidate and served model on the same holdout
    scores = fitting.evaluate(candidate, dataset.data_yaml, work, settings, "candidate")
    run.metrics["candidate"] = scores.to_json()
    comparable = served if served and fitting.class_names(served) == dataset.labels else None
    if comparable is None and Path(start).suffix == ".pt" and fitting.class_names(start) == dataset.labels:
        comparable = Path(start)  # a base already trained on exactly these labels
    baseline = fitting.evaluate(comparable, dataset.data_yaml, work, settings, "served") if comparable else None
    run.metrics["served"] = baseline.to_json() if baseline else None

    # publish: only a candidate at least as good as what serves now
    _decide(run, registry, candidate, dataset, scores, baseline)


def _decide(run: RunRecord, registry: Registry, candidate: Path, dataset: Dataset, scores: Scores,
            baseline: Scores | None) -> None:
    if baseline is not None and not scores.at_least(baseline):
        state.reject(run, f"candidate mAP50-95 {scores.map50_95:.3f} < served {baseline.map50_95:.3f} "
                          "on the holdout; the served model stays")
        return
    why = ("nothing served yet for these labels" if baseline is None else
           f"candidate mAP50-95 {scores.map50_95:.3f} >= served {baseline.map50_95:.3f}")
    version = registry.publish(candidate, dataset.labels, dict(run.metrics), run.run_id)
    state.promote(run, version, why)


def _served_checkpoint(settings: Settings, registry: Registry) -> Path | None:
    entry = registry.served()
    if entry is None:
        return None
    path = registry.checkpoint(entry)
    return path if path.is_file() else None


def _base_start(settings: Settings) -> str:
    """MODEL_PATH under MODEL_ROOT; without weights there, its architecture (yolov5nu.pt -> yolov5nu.yaml)."""
    base = settings.model_root_path / settings.model_path
    return str(base) if base.is_file() else f"{Path(settings.model_path).stem}.yaml"
