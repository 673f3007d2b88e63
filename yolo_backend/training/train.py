"""The training recipe, top to bottom: collect, write dataset, train, evaluate, decide, export, publish.

``run_once`` never raises: whatever happens ends as a named state in the project's
status file (promoted, rejected, not_started or failed, with the reason). It runs in
the training process only (local runner child or ``rq worker``), never in a web worker.
"""

from __future__ import annotations

import functools
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import kinds
from ..config import Settings
from ..core import state
from ..core.checkpoints import checkpoint_version, safe_model_path
from ..core.registry import Registry, ServedChanged, project_dir
from ..core.state import RunRecord
from ..core.status import StatusBook
from ..errors import LabelConfigError
from ..formats.controls import ControlSpec
from ..serving.model_store import UNTRAINED
from . import quantize, scoring
from .collect import LABEL_STUDIO, load_project
from .dataset import build_dataset, for_dataset, passed_over, training_control
from .examples import Dataset
from .retention import prune

log = logging.getLogger("yolo_backend.training")


def run_once(settings: Settings, project: str, run: RunRecord, source: str = LABEL_STUDIO,
             used: set[Path] | None = None) -> RunRecord:
    """Execute one run of ``project`` and record how it ended.

    ``used`` collects the training images the run read (the ones retention keeps); the
    watchdog passes its own set, so that a deadline after publishing can still prune.
    """
    book = StatusBook(settings.model_dir_path, project)
    book.save(state.start(run))
    work = project_dir(settings.model_dir_path, project) / "runs" / run.run_id
    used = set() if used is None else used
    try:
        _recipe(settings, project, run, source, work, book, used)
    except Exception as exc:  # any failure is a recorded state, never a crash of the worker loop
        log.exception("project %s: run %s failed", project, run.run_id)
        state.fail(run, f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # datasets and Ultralytics outputs are per run
    retain(settings, project, run, used)
    book.save(run)
    log.info("project %s: run %s %s: %s", project, run.run_id, run.state.value, run.reason)
    return run


def retain(settings: Settings, project: str, run: RunRecord, used: set[Path]) -> None:
    """Retention after a run (``retention.prune``): served + newest KEEP_VERSIONS versions stay; older weights,
    exports and the images ``used`` did not read go. A run that never reached Label Studio (``used`` empty)
    must not empty the image cache, so it prunes nothing."""
    if not used:
        return
    try:
        run.metrics["retention"] = prune(settings.model_dir_path, project, settings.keep_versions,
                                         settings.model_dir_path / "runtime", used)
    except OSError as exc:
        log.warning("project %s: retention: %s", project, exc)


def _recipe(settings: Settings, project: str, run: RunRecord, source: str, work: Path, book: StatusBook,
            used: set[Path]) -> None:
    # collect: Label Studio is the source of truth (the webhook body is never used)
    data = load_project(settings, project, source)

    # the kind the control trains: its own, or the one its served checkpoint's task picks (obb)
    registry = Registry(settings.model_dir_path, project)
    skipped = passed_over(data.label_config)  # <Choices choice="multiple">: no checkpoint learns it
    if skipped:
        run.metrics["passed_over"] = skipped
    try:
        spec = training_control(data.label_config)
    except LabelConfigError as exc:
        if not skipped:
            raise
        state.not_started(run, str(exc))  # nothing else to train: said, not failed
        return
    served = _served_now(settings, registry, spec)
    kind = kinds.for_result(spec.kind, spec.task or served.task)  # served.task loads it: asked only where kinds share

    # write dataset: upright images, the kind's rows; a holdout Ultralytics never sees, a val split carved from train
    dataset = build_dataset(work / "dataset", data.tasks, data.label_config, settings, project=project, kind=kind)
    used.update(e.image for e in (*dataset.train, *dataset.val, *dataset.holdout))
    run.metrics.update(train_images=len(dataset.train), val_images=len(dataset.val),
                       holdout_images=len(dataset.holdout), skipped_tasks=len(dataset.skipped),
                       labels=dataset.labels, control=spec.from_name, task=kind.TRAIN_TASK, metric=kind.METRIC)
    media = for_dataset(dataset)  # image or video: what it needs, records and is predicted by (dataset.BUILDERS)
    run.metrics.update(media.counts(dataset))
    short = media.too_small(dataset, settings)
    if short:
        state.not_started(run, short)
        return

    from . import fitting, holdout  # imports torch/Ultralytics: only once there is something to train

    # train: from the served version if there is one, else from the base (its backbone, for another task)
    start, pretrained = (str(served.path), None) if served.trained else _base_start(settings, spec.model_path,
                                                                                       kind.TRAIN_TASK, served)
    run.metrics["started_from"] = Path(start).name + (f" with {Path(pretrained).name}'s weights" if pretrained else "")

    def progress(info: dict) -> None:
        run.progress = info
        book.save(run)
        log.info("project %s: run %s epoch %d/%d loss %s elapsed %.0f s remaining %.0f s", project, run.run_id,
                 info["epoch"], info["epochs"], info["loss"], info["elapsed_s"], info["remaining_s"])

    epochs = epochs_for(len(dataset.train), settings)
    run.metrics["epochs"] = epochs
    candidate = fitting.fit(start, dataset.labels, dataset.data_yaml, work, settings.replace(train_epochs=epochs),
                            progress, pretrained)

    # evaluate: both models on the same holdout, as the service would serve them to annotators
    run.progress = {**run.progress, "phase": "scoring on the holdout"}
    book.save(run)
    labels, default = dataset.labels, settings.model_score_threshold
    predict = media.predict  # as served: images one by one, a video's holdout frames from its tracks
    found = predict(candidate, dataset.holdout, spec, settings, kind)
    scores = judge(found, len(labels), settings, spec.threshold, kind.METRIC)
    baseline_found = (predict(served.path, dataset.holdout, spec, settings, kind) if served.path
                      else holdout.no_model(dataset.holdout, kind))
    baseline = judge(baseline_found, len(labels), settings, spec.threshold, kind.METRIC)
    gain = scoring.gain(scores, baseline)  # how sure: a paired bootstrap over the holdout images
    run.metrics["candidate"] = scores.to_json()
    run.metrics["served"] = {**baseline.to_json(), "version": served.version}
    run.metrics["gain"] = gain.to_json()

    # decide: the F1 gain's interval clears PROMOTE_MIN_GAIN, boxes no worse; ties keep the served model
    promote, why = scoring.decide(scores, baseline, settings.promote_min_gain, gain)
    if not promote:
        state.reject(run, f"{why}; {served.version} stays")
        return
    thresholds = scoring.best_thresholds(found, len(labels), default)
    run.metrics["thresholds"] = {labels[i]: t for i, t in sorted(thresholds.items())}

    # export and check: the engine it will serve on, checked on the holdout now, never in a web request
    run.progress = {**run.progress, "phase": "exporting"}
    book.save(run)
    verdict, imgsz = _prepare_runtime(candidate, dataset, settings)
    run.metrics["runtime"] = verdict
    if settings.int8:  # a quantized copy, served only if the holdout says it is as good (int8.py)
        run.progress = {**run.progress, "phase": "int8: quantizing and judging on the holdout"}
        book.save(run)
        run.metrics["int8"] = quantize.for_version(candidate, verdict, imgsz, dataset, spec, settings, kind,
                                                       run.metrics["thresholds"])  # judged at what is served

    # publish: unless someone chose another served version meanwhile (a rollback stands)
    try:
        version = registry.publish(candidate, labels, dict(run.metrics), run.run_id, expect_served=served.registered,
                                   control=spec.from_name, thresholds=run.metrics["thresholds"], imgsz=imgsz,
                                   runtime=verdict, export_key=verdict.get("key"), decision=why)
    except ServedChanged as exc:
        state.reject(run, str(exc))
        return
    state.promote(run, version, why)


def epochs_for(images: int, settings: Settings) -> int:
    """TRAIN_EPOCHS, cut so the run takes at most TRAIN_STEPS optimizer steps (one per batch; 0: no cut).

    A run's time grows with epochs times images: without a cut, the run at 300 images takes five
    times the one at 60 while the annotator waits on the old version. Never under one epoch.
    """
    if settings.train_steps <= 0 or images <= 0:
        return settings.train_epochs
    batch = settings.train_batch if settings.train_batch > 0 else 16  # -1 (auto) is a GPU's choice: count 16
    steps_per_epoch = -(-images // batch)
    return max(1, min(settings.train_epochs, settings.train_steps // steps_per_epoch))


def judge(found: list[scoring.Image], n_labels: int, settings: Settings, control_threshold: float | None,
          metric: str) -> scoring.Scores:
    """One model's holdout scores, by the one procedure the candidate and the served model share.

    With CLASS_THRESHOLDS on, both are scored at per-class thresholds cross-fitted on this
    holdout (chosen on one half, judged on the other), never the served version at its
    stored thresholds: those were chosen on its own run's holdout, and the holdout is stable
    (``core.split``), so they were fitted on most of the images now judging it, an edge
    the candidate cannot have. Cross-fitting both asks the same question of each: how good
    are its pre-labels at thresholds chosen on images other than the ones scored. The
    control's ``model_score_threshold``, or MODEL_SCORE_THRESHOLD, applies to both alike.
    """
    return scoring.score(found, n_labels, settings.model_score_threshold, control_threshold=control_threshold,
                         choose_per_class=settings.class_thresholds, metric=metric)


@dataclass(frozen=True)
class _Served:
    """What serves the training control now, as the run found it at its start."""

    path: Path | None  # None: no weights at all
    version: str
    registered: str | None  # the registry's served name (None: the base serves)
    thresholds: dict[str, float]
    trained: bool
    base: Path | None = None  # the control's base checkpoint, where a first run starts (a prompted model serves)

    def task(self) -> str | None:
        """Its Ultralytics task (None: no weights); loads the checkpoint, so asked only when it decides something."""
        return _checkpoint_task(str(self.path)) if self.path is not None else None


@functools.lru_cache(maxsize=8)
def _checkpoint_facts(path: str) -> tuple[str | None, dict[int, str]]:
    """A checkpoint's Ultralytics task and class names; loads it once per run."""
    from ..serving.detector import load_ultralytics

    model = load_ultralytics(Path(path))
    return getattr(model, "task", None), dict(getattr(model, "names", None) or {})


def _checkpoint_task(path: str) -> str | None:
    return _checkpoint_facts(path)[0]


def _served_now(settings: Settings, registry: Registry, spec: ControlSpec) -> _Served:
    """The project's served version, else the prompted PROMPT_MODEL for labels no base class knows (``prompts``),
    else the control's base (its model_path, else MODEL_PATH), else nothing.

    The base is confined to MODEL_ROOT as serving confines it (``safe_model_path``), and checked
    even when a trained version serves: whoever edits a label config must never make this process
    unpickle a file elsewhere. A refused path raises ``ModelPathRefused``, which fails the run.
    """
    base = safe_model_path(settings.model_root_path, spec.model_path or settings.model_path)
    start = base if base.is_file() else None
    served_name = registry.load()["served"]
    entry = registry.served()
    if entry is not None and registry.checkpoint(entry).is_file():
        return _Served(registry.checkpoint(entry), entry["version"], served_name, dict(entry.get("thresholds") or {}),
                       True, start)
    prompted = _prompted(settings, spec, start)
    if prompted is not None:
        return _Served(prompted[0], prompted[1], served_name, {}, False, start)
    if start is not None:
        return _Served(base, checkpoint_version(base), served_name, {}, False, start)
    return _Served(None, UNTRAINED, served_name, {}, False)


def _prompted(settings: Settings, spec: ControlSpec, base: Path | None) -> tuple[Path, str] | None:
    """(checkpoint, version) of the prompted model serving ``spec`` as /predict serves it; None when none does.

    The gate judges it as it judges any served model: a candidate replaces it only when surely better.
    """
    if not settings.prompt_model:
        return None
    from ..serving.prompts import PromptModels, PromptUnavailable, prompts_for

    names = _checkpoint_facts(str(base))[1] if base is not None else {}
    asked = prompts_for(spec, names)
    if not asked:
        return None
    models = PromptModels(settings)
    try:
        return models.make(spec.labels, asked), models.version(spec.labels, asked)
    except PromptUnavailable as exc:  # the base is the baseline, as it serves meanwhile
        log.warning("control %r: %s", spec.from_name, exc)
        return None


def _prepare_runtime(candidate: Path, dataset: Dataset, settings: Settings) -> tuple[dict, int]:
    """Export the candidate for RUNTIME and check it answers as torch on up to 16 holdout images."""
    from ..serving import runtime
    from ..serving.detector import checkpoint_imgsz, pick_device
    from .holdout import holdout_images

    imgsz = settings.fixed_imgsz or checkpoint_imgsz(candidate)
    images = [pixels for chunk in holdout_images(dataset.holdout[:16]) for _, pixels in chunk]
    verdict = runtime.prepare(candidate, settings.runtime, pick_device(settings.device), imgsz,
                              settings.model_dir_path / "runtime", images)
    return {**verdict.to_json(), "key": runtime.content_key(candidate)}, imgsz


TASK_SUFFIX = {"detect": "", "segment": "-seg", "obb": "-obb", "pose": "-pose", "classify": "-cls"}
FALLBACK_FAMILY = "yolo11n"  # a family Ultralytics has every task's architecture of


def _base_start(settings: Settings, model_path: str | None, task: str, served: _Served) -> tuple[str, str | None]:
    """(model, weights to start it from) for a project's first run of a ``task`` control.

    The base checkpoint (the control's model_path, else MODEL_PATH) when it is a ``task``
    model; for another task, that task's architecture of the same family, starting from the
    base's matching weights (``yolo train model=yolo11n-seg.yaml pretrained=yolo11n.pt``);
    without weights, the architecture alone. Never the prompted model a first run is judged against.
    """
    name = Path(model_path or settings.model_path).stem
    if served.base is not None and _checkpoint_task(str(served.base)) == task:
        return str(served.base), None
    return architecture(name, task), (str(served.base) if served.base is not None else None)


def architecture(name: str, task: str) -> str:
    """``task``'s architecture yaml of ``name``'s family (yolo11n-pose.pt, obb -> yolo11n-obb.yaml)."""
    from ultralytics.nn.tasks import yaml_model_load

    for suffix in TASK_SUFFIX.values():
        if suffix and name.endswith(suffix):
            name = name[: -len(suffix)]
    for family in (name, FALLBACK_FAMILY):
        candidate = f"{family}{TASK_SUFFIX[task]}.yaml"
        try:
            yaml_model_load(candidate)
        except (FileNotFoundError, OSError):
            continue
        return candidate
    return f"{FALLBACK_FAMILY}{TASK_SUFFIX[task]}.yaml"
