"""The model class Label Studio's ML protocol calls: ``setup``, ``predict``, ``fit``.

The data path, top to bottom: request -> tasks -> image URLs -> pixels
(``media``) -> detections (``detector``) -> Label Studio results (``kinds``, one module per kind).
Which controls to fill and how classes map to labels comes from ``label_config``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .. import kinds
from ..config import Settings
from ..errors import BackendError, BadRequest, LabelConfigError, MediaError
from ..formats import convert, label_config, media_axis
from ..media.fetcher import LoadedImage, MediaFetcher, url_host
from ..video import frames as video_frames
from ..video import predict as video_predict
from . import prompts, tiles, uncertainty
from .metrics import Metrics
from .model_store import ModelStore, ServedModel
from .prompts import PromptModels, PromptUnavailable

log = logging.getLogger("yolo_backend.model")

# What Label Studio 1.23 sends to /webhook that the trainer takes (docs/training.md, "Events Label
# Studio sends"); any other event is answered "ignored". A delete is ANNOTATIONS_DELETED, also for one.
TRAINING_EVENTS = ("START_TRAINING", "ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED",
                   "ANNOTATIONS_DELETED", "TASKS_CREATED", "PROJECT_UPDATED")


def changed_annotations(event: str, body: dict[str, Any]) -> int:
    """How many annotations an event changed: 1 for a single ``annotation``, the length of a bulk list.

    ``ANNOTATIONS_CREATED`` puts its list under the singular key ``annotation``, ``ANNOTATIONS_DELETED``
    a list of ``{"id": ...}`` under ``annotations``; ``TASKS_CREATED`` (an import) carries only its
    tasks, each with ``total_annotations`` (imported ones, skipped ones apart).
    """
    if event == "TASKS_CREATED":
        tasks = body.get("tasks")
        counts = [t.get("total_annotations") for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []
        return sum(n for n in counts if isinstance(n, int) and n > 0)
    carried = body.get("annotations", body.get("annotation"))
    return len(carried) if isinstance(carried, list) else 1


class Trainer(Protocol):
    """What ``fit`` hands events to; the training package provides the real one."""

    def handle(self, event: str, project_id: str, changes: int = 1) -> dict[str, Any]: ...

    def status(self, project_id: str) -> dict[str, Any]: ...


class NoTraining:
    """Training not configured: events are acknowledged and dropped."""

    def handle(self, event: str, project_id: str, changes: int = 1) -> dict[str, Any]:
        return {"status": "ignored", "reason": "training is not enabled in this service"}

    def status(self, project_id: str) -> dict[str, Any]:
        return {"project": project_id, "state": "disabled"}


def project_id(project: Any) -> str | None:
    """Label Studio sends ``"<id>.<created ts>"`` in predict/setup and ``{"id": ...}`` in events."""
    if isinstance(project, dict):
        project = project.get("id")
    if project is None or project == "":
        return None
    return str(project).split(".")[0]


@dataclass
class _Job:
    """One (task, control) pair awaiting detections."""

    task_index: int
    spec: label_config.ControlSpec
    image: LoadedImage


class YOLOBackend:
    """Ties label config, media, models and conversion together; one per process."""

    def __init__(self, settings: Settings, store: ModelStore | None = None, metrics: Metrics | None = None,
                 trainer: Trainer | None = None, media: MediaFetcher | None = None,
                 prompt_models: PromptModels | None = None) -> None:
        self.settings = settings
        self.store = store or ModelStore(settings)
        self.prompts = prompt_models or PromptModels(settings)
        self.metrics = metrics or Metrics()
        self.trainer: Trainer = trainer or NoTraining()
        self.media = media or MediaFetcher.from_settings(settings)
        self._pool = ThreadPoolExecutor(max_workers=settings.fetch_workers, thread_name_prefix="fetch")
        self._controls: dict[str | None, tuple[label_config.ControlSpec, ...]] = {}  # project -> controls, last seen
        self._hinted: set[tuple] = set()

    # -- setup ----------------------------------------------------------------
    def setup(self, project: Any, label_config_xml: str) -> dict[str, Any]:
        """Validate the label config (400 naming what is missing) and tell the served version.

        Answers from files only (the registry and checkpoint stats), never by loading a model:
        Label Studio gives /setup 3 s and marks the backend failed after that. A newly promoted
        version starts loading in the background here, so the next task opens at full speed.
        """
        specs = label_config.parse(label_config_xml)
        for spec in specs:  # a control no checkpoint can serve (<Choices choice="multiple">): say what to use
            reason = kinds.refusal(spec)
            if reason:
                raise LabelConfigError(reason)
        pid = project_id(project)
        self._remember(pid, specs)
        version = self._version(pid, specs)
        self.store.prefetch(pid, [(spec.from_name, spec.model_path) for spec in specs])
        for spec in specs:  # a prompted control: its checkpoint made (text embeddings) and loaded in the background
            if self._prompted(pid, spec, loaded_only=True):
                threading.Thread(target=self._prefetch_prompted, args=(pid, spec), daemon=True,
                                 name=f"prompt-{spec.from_name}").start()
        self._check_loaded(pid, specs)
        return {"model_version": version}

    def _remember(self, pid: str | None, specs: tuple[label_config.ControlSpec, ...]) -> None:
        """The project's controls, kept for /versions?project= (bounded, whatever ids requests carry)."""
        if len(self._controls) > 10_000:
            self._controls.clear()
        self._controls[pid] = specs

    def _version(self, pid: str | None, specs: tuple[label_config.ControlSpec, ...]) -> str:
        """One version string for a project's controls: /setup, /predict and /versions say the same, so Label
        Studio's comparison of stored predictions holds. Known from files: nothing is loaded or made."""
        versions = set()
        for spec in specs:
            asked = self._prompted(pid, spec, loaded_only=True)
            versions.add(self.prompts.version(spec.labels, asked) if asked
                         else self.store.plan(pid, spec.from_name, spec.model_path).version)
        return "+".join(sorted(versions))

    # -- which checkpoint serves a control ------------------------------------------------------------
    def serve_control(self, pid: str | None, spec: label_config.ControlSpec) -> ServedModel:
        """The project's trained version for ``spec``; else, for labels no base class knows, the prompted
        PROMPT_MODEL (``prompts``); else the base (the control's model_path, else MODEL_PATH)."""
        asked = self._prompted(pid, spec)
        if asked:
            try:
                path = self.prompts.make(spec.labels, asked)
                return self.store.serve_made(pid, spec.from_name, path, self.prompts.version(spec.labels, asked))
            except PromptUnavailable as exc:  # said on /health; the base serves what it knows meanwhile
                log.warning("project %s, control %r: %s", pid, spec.from_name, exc)
        return self.store.serve(pid, spec.from_name, spec.model_path)

    def _prompted(self, pid: str | None, spec: label_config.ControlSpec, loaded_only: bool = False
                  ) -> tuple[str, ...] | None:
        """The prompts ``spec`` is served with by PROMPT_MODEL; None when a trained version, its own model_path
        or the base's classes serve it. ``loaded_only``: judge by the base already loaded (/setup never loads)."""
        if not self.prompts.enabled or self.store.plan(pid, spec.from_name, spec.model_path).trained:
            return None
        base = self.store.loaded(self.store.base_path) if loaded_only else self.store.base().detector
        return prompts.prompts_for(spec, base.names if base is not None else {})

    def _prefetch_prompted(self, pid: str | None, spec: label_config.ControlSpec) -> None:
        try:
            self.serve_control(pid, spec)
        except Exception:  # a prefetch never raises; /predict says what is wrong
            log.debug("prompted model for project %s failed", pid, exc_info=True)

    def _check_loaded(self, pid: str | None, specs: tuple[label_config.ControlSpec, ...]) -> None:
        """What /setup can tell from checkpoints already loaded (it never loads one; /predict checks the rest).

        A checkpoint whose task cannot serve its control is a 400 naming the fix (obb behind
        polygons, ...); a label/class mismatch is logged once per project, control and model,
        not on every /setup.
        """
        for spec in specs:
            plan = self.store.plan(pid, spec.from_name, spec.model_path)
            detector = self.store.loaded(plan.path)
            if detector is None or spec.click_tool:
                continue
            kind = kinds.for_result(spec.kind, _serving_task(spec, getattr(detector, "task", "detect")))
            key = (pid, spec, plan.version)
            if key in self._hinted:
                continue
            if len(self._hinted) > 10_000:
                self._hinted.clear()
            self._hinted.add(key)
            hint = label_config.mismatch_hint(spec, detector.names, kind.class_labels(spec, detector.names))
            if hint:
                log.warning("project %s: %s", pid, hint)

    def current_version(self, pid: str | None) -> str | None:
        """The version string /setup and /predict give this project now (None before its first /setup)."""
        specs = self._controls.get(pid)
        return self._version(pid, specs) if specs else None

    # -- predict --------------------------------------------------------------
    def predict(self, tasks: list[dict[str, Any]], context: dict[str, Any] | None = None,
                project: Any = None, label_config_xml: str = "", video_deadline: bool = True,
                progress: Callable[[int, int], None] | None = None,
                failed: dict[int, str] | None = None) -> list[dict[str, Any]]:
        """One prediction per task, in order; a task whose image or video fails gets an empty result.

        ``video_deadline``: video tracking stops after VIDEO_PREDICT_SECONDS (Label Studio's wait);
        ``yolo-ls prelabel`` turns it off and follows ``progress(frames done, total)`` instead.
        ``failed``, when given, receives task index -> reason for each task whose media failed (a bulk
        job stores nothing for those, so opening them tries again), and a single task no longer raises.
        """
        deadline = time.monotonic() + self.settings.video_predict_seconds if video_deadline else None
        specs = label_config.parse(label_config_xml)
        pid = project_id(project)
        self._remember(pid, specs)
        models = {spec: self.serve_control(pid, spec) for spec in specs}
        targets = {spec: self._target(spec, served, _same_model_boxes(spec, models)) for spec, served in models.items()}
        regions: list[list[dict[str, Any]]] = [[] for _ in tasks]
        doubts = [0.0] * len(tasks)  # each task's borderline decisions, for its score (uncertainty.py)
        # the same string /setup answers (ModelStore.version), from the models that actually served
        versions = "+".join(sorted({served.version for served in models.values()}))
        failures: list[MediaError] = []
        # Images arrive in groups while the next ones are fetched and decoded: inference overlaps
        # I/O, and at most a window of decoded images is held, however many tasks come.
        # Controls on the same image served by the same checkpoint (a pose model's boxes and keypoints)
        # share one inference, at the lowest threshold any of them needs.
        on = media_axis.by_media(specs)  # image controls: detected in groups here; video controls: tracked below
        shared: dict[tuple[int, str], list[label_config.ControlSpec]] = {}
        for spec in on[media_axis.IMAGE]:
            if models[spec].detector is not None and targets[spec] is not None:
                shared.setdefault((id(models[spec].detector), spec.data_key), []).append(spec)
        for group in self._fetch_groups(tasks, tuple(on[media_axis.IMAGE]), failures):
            for alike in shared.values():
                jobs = [job for job in group if job.spec == alike[0]]
                if not jobs:
                    continue
                detector = models[alike[0]].detector
                chosen = [targets[spec] for spec in alike]
                lowest = min(target.lowest_threshold for target in chosen)  # type: ignore[union-attr]
                started = time.perf_counter()
                # down to the floor the task score counts; each kind still shows only what passes its threshold
                # model_tile / TILE: large images also in tiles, for small objects (tiles.py); off: the plain call
                found = tiles.detect(detector, [job.image.pixels for job in jobs],
                                     tiles.tile_size(alike, self.settings.tile),
                                     conf=uncertainty.ask_conf(lowest, self.settings.task_score),
                                     bulk=len(tasks) > 1)  # many tasks: throughput first (BULK_LANES)
                per_image = (time.perf_counter() - started) / len(jobs)
                for job, detections in zip(jobs, found):
                    self.metrics.inference.observe(per_image)
                    regions[job.task_index] += kinds.detections_to_regions(
                        detections, chosen, job.image.width, job.image.height)  # type: ignore[arg-type]
                    doubts[job.task_index] += uncertainty.image_doubt(detections, chosen)  # type: ignore[arg-type]
            for job in group:  # detections made: the pixels go back to DECODE_BUDGET_MB
                job.image.release()
        videos = {spec: targets[spec] for spec in on[media_axis.VIDEO] if targets[spec] is not None}
        if videos:
            self._track_videos(tasks, videos, models, regions, failures, deadline, progress)
        if failures and len(tasks) == 1 and failed is None:
            raise failures[0]
        if failed is not None:
            index = {id(task): i for i, task in enumerate(tasks)}
            failed.update({index[id(f.task)]: f"{f.kind}: {f}" for f in failures})  # type: ignore[attr-defined]
        failed_ids = {id(f.task) for f in failures}  # type: ignore[attr-defined]
        self.metrics.tasks.labels("failed").inc(len(failed_ids))
        self.metrics.tasks.labels("ok").inc(len(tasks) - len(failed_ids))
        looked = any(target is not None for target in targets.values())  # else no model saw any task
        predictions = []
        for i, task in enumerate(tasks):  # video tracks are decisions too: the tracker keeps no dropped ones
            doubt = doubts[i] + uncertainty.regions_doubt(regions[i], videos.values())
            score = uncertainty.task_score(regions[i], doubt if looked and id(task) not in failed_ids else None,
                                           self.settings.task_score)
            predictions.append(convert.task_prediction(regions[i], versions, score))
        return predictions

    def _track_videos(self, tasks: list[dict[str, Any]], targets: dict[label_config.ControlSpec, convert.Target],
                      models: dict[label_config.ControlSpec, ServedModel], regions: list[list[dict[str, Any]]],
                      failures: list[MediaError], deadline: float | None,
                      progress: Callable[[int, int], None] | None) -> None:
        """Each video task's tracks, one task at a time (a video is streamed from disk, never held whole)."""
        options = {spec: video_predict.options_for(spec, self.settings) for spec in targets}
        for index, task in enumerate(tasks):
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                raise BadRequest(f"tasks[{index}] must be an object with a 'data' object")
            for spec, target in targets.items():
                url = task["data"].get(spec.data_key)
                try:
                    path = self.media.video_path(url, task.get("id"))
                    info = video_frames.probe(path, self.settings.max_video_seconds, self.settings.max_image_pixels)
                    started = time.perf_counter()
                    regions[index] += video_predict.video_regions(
                        path, info, target, models[spec].detector, options[spec], deadline=deadline, progress=progress)
                    self.metrics.inference.observe(time.perf_counter() - started)
                except BackendError as exc:
                    failures.append(self._failed(exc, task, spec, url))

    def _target(self, spec: label_config.ControlSpec, served: ServedModel, box_control: str | None = None
                ) -> convert.Target | None:
        """Where one control's results go; None when the model knows none of its labels.

        Thresholds: the control's ``model_score_threshold``; else the served version's own
        per-class thresholds (CLASS_THRESHOLDS); else MODEL_SCORE_THRESHOLD.
        """
        if served.detector is None or spec.click_tool:  # a smart click tool is answered by assist, never pre-labelled
            return None
        task = _serving_task(spec, getattr(served.detector, "task", "detect"))
        labels = kinds.for_result(spec.kind, task).class_labels(spec, served.detector.names)
        per_class: dict[int, float] = {}
        if spec.threshold is None and self.settings.class_thresholds:
            per_class = {cls: served.thresholds[label] for cls, label in labels.items() if label in served.thresholds}
        target = convert.Target(
            replace(spec, box_control=box_control), labels=labels,  # its box control only when served with it
            threshold=spec.threshold if spec.threshold is not None else self.settings.model_score_threshold,
            class_thresholds=per_class, task=task,
        )
        return target if target.labels else None

    def _fetch_groups(self, tasks: list[dict[str, Any]], specs: tuple[label_config.ControlSpec, ...],
                      failures: list[MediaError], group_size: int = 8) -> Iterator[list[_Job]]:
        """Decoded images in task order, in groups, fetching up to ``2 * FETCH_WORKERS`` ahead.

        Failures are logged per task and appended to ``failures``, not raised. Decoding shares the
        worker's DECODE_BUDGET_MB (``decode_budget``): this request's images are granted in order, and
        a partial group is handed on before waiting for an image, so what the request holds is freed
        by inference instead of blocking the image it waits for.
        """
        by_key: dict[str, list[label_config.ControlSpec]] = {}
        for spec in specs:  # controls on the same image field share one download and decode
            by_key.setdefault(spec.data_key, []).append(spec)
        pairs = []
        for index, task in enumerate(tasks):
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                raise BadRequest(f"tasks[{index}] must be an object with a 'data' object")
            pairs += [(index, task, alike, task["data"].get(key)) for key, alike in by_key.items()]
        window = max(2 * self.settings.fetch_workers, group_size)
        claimant = self.media.budget.claimant()
        ahead: deque = deque()
        group: list[_Job] = []
        try:
            for position in range(len(pairs)):
                while len(ahead) < window and position + len(ahead) < len(pairs):
                    turn = position + len(ahead)
                    _, task, _, url = pairs[turn]
                    ahead.append((turn, self._pool.submit(self._load, url, task.get("id"), claimant, turn)))
                index, task, alike, url = pairs[position]
                if group and not ahead[0][1].done():
                    yield group  # inference frees these while the next image downloads or waits for the budget
                    group = []
                try:
                    image = ahead.popleft()[1].result()
                    group += [_Job(index, spec, image) for spec in alike]
                except BackendError as exc:
                    failures.append(self._failed(exc, task, alike[0], url))
                if len(group) >= group_size:
                    yield group
                    group = []
            if group:
                yield group
                group = []
        finally:  # a request that stops early (an error, a single failed task) gives back all it holds
            _give_back(group, ahead, claimant)

    def _failed(self, exc: BackendError, task: dict[str, Any], spec: label_config.ControlSpec,
                url: Any) -> MediaError:
        error = exc if isinstance(exc, MediaError) else MediaError(str(exc))
        error.task = task  # type: ignore[attr-defined]
        self.metrics.errors.labels(exc.kind).inc()
        host = url_host(url) if isinstance(url, str) else "-"
        log.warning("task %s: %s %r from %s failed: %s", task.get("id"), spec.media, spec.data_key, host, exc)
        return error

    def _load(self, url: Any, task_id: Any, claimant: Any = None, turn: int = 0) -> LoadedImage:
        started = time.perf_counter()
        image = self.media.load(url, task_id, claimant, turn)
        self.metrics.fetch.observe(time.perf_counter() - started)
        return image

    # -- fit --------------------------------------------------------------------
    def fit(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """Hand a Label Studio event, with how many annotations it changed, to the trainer; never trains here."""
        if event not in TRAINING_EVENTS:
            return {"status": "ignored", "reason": f"event {event!r} is not used by this backend"}
        pid = project_id(data.get("project"))  # every event body carries the project (bulk ones too)
        if pid is None:
            raise BadRequest(f"{event} event without project id")
        return self.trainer.handle(event, pid, changes=changed_annotations(event, data))

    def versions(self) -> list[str]:
        """Version strings predictions of this service carry: the base's and every promoted version's."""
        known = {self.store.base_version, *getattr(self.trainer, "known_versions", lambda: [])()}
        return sorted(known)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _give_back(group: list[_Job], ahead: deque, claimant: Any) -> None:
    """Release the pixels of a request that ended early; loads not started skip their turn."""
    for job in group:
        job.image.release()
    for turn, future in ahead:
        if future.cancel():
            claimant.skip(turn)
        else:
            future.add_done_callback(lambda done: done.exception() is None and done.result().release())


def _same_model_boxes(spec: label_config.ControlSpec, models: dict[label_config.ControlSpec, ServedModel]
                      ) -> str | None:
    """``spec.box_control`` when that control is served by the same checkpoint now, so its boxes exist.

    A project's promoted version serves the control it was trained for; its box control may
    still be on the base, and points must not name boxes nobody predicts.
    """
    box = next((other for other in models if other.from_name == spec.box_control), None)
    if box is None or models[box].detector is None or models[box].detector is not models[spec].detector:
        return None
    return spec.box_control


def _serving_task(spec: label_config.ControlSpec, task: str) -> str:
    """The task whose kind serves ``spec`` from a ``task`` checkpoint; LabelConfigError (400) when none fits."""
    try:
        kinds.serving_kind(spec.kind, task, spec.task, spec.from_name)
    except kinds.KindMismatch as exc:
        raise LabelConfigError(str(exc)) from None
    return task
