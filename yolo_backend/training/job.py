"""What a training worker executes for one project: runs, back to back while follow-ups are asked for.

Both runners call ``run_job``: the local runner in a child process
(``python -m yolo_backend.training.job``, settings on stdin), the RQ runner through
``rq worker``. The process holds the project's ``run.lock`` for its whole life, which
is how every other process knows a run is alive.

TRAIN_TIMEOUT bounds each whole run (fetching images, writing the dataset, training,
scoring, export), not only its epochs: a ``Watchdog`` thread ends the process when the
deadline passes, so whatever the run was stuck in, the kernel drops its locks and the
next trigger can queue a new run. A deadline that comes after the run published its
version records what happened (promoted, with a note) and still runs retention.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from ..config import Settings
from ..core import state
from ..core.durable import locked
from ..core.registry import Registry, project_dir
from ..core.state import RunRecord, RunState
from ..core.status import StatusBook
from ..logs import configure
from .coalesce import Coalescer
from .collect import LABEL_STUDIO
from .train import retain, run_once

log = logging.getLogger("yolo_backend.training")

NICENESS = 10  # the web workers' /predict comes first when both want the CPU
TIMED_OUT = 3  # exit status of a process whose run passed TRAIN_TIMEOUT (RQ marks the job failed)
# Functions of the recipe (train.py) and what the timeout reason calls them; the innermost one on the run's
# stack is reported, else the phase the run last recorded in its progress.
STEPS = {"load_project": "collect: reading the project's tasks",
         "build_dataset": "write dataset: fetching and decoding images",
         "fit": "train", "predict_holdout": "evaluate: scoring on the holdout",
         "predict_tracks": "evaluate: tracking the holdout videos",
         "prepare": "export: making and checking the serving engine", "publish": "publish"}


def run_job(project: str, run_id: str | None = None, source: str = LABEL_STUDIO,
            settings: Settings | None = None, one_at_a_time: bool = False) -> str:
    """Run ``project``'s queued run, then one follow-up if triggers came during it; returns the last state.

    ``one_at_a_time`` (local runner) also takes ``MODEL_DIR/training-slot.lock``, so several web
    workers never train two projects at once on one machine; with RQ, the number of workers decides.
    A run that passes TRAIN_TIMEOUT ends this process (see ``Watchdog``), also when called in-process.
    """
    settings = settings or Settings.from_env()
    if not logging.getLogger().handlers:  # under `rq worker`: make the progress lines visible
        configure(settings.log_level)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    # what this process trains with (an `rq worker` reads its own environment, not the web side's); secrets masked
    log.info("project %s: training with %r", project, settings)
    coalescer = Coalescer(settings.model_dir_path, project)
    book = StatusBook(settings.model_dir_path, project)
    slot = locked(settings.model_dir_path / "training-slot.lock") if one_at_a_time else contextlib.nullcontext()
    last = "idle"
    with locked(coalescer.run_lock), slot:
        while True:
            coalescer.begin()
            clear_stale_runs(settings.model_dir_path, project)
            current = book.current()
            run = current if current and current.run_id == run_id and current.state == RunState.QUEUED \
                else RunRecord(project)
            used: set[Path] = set()  # the run's training images: retention keeps them, also after a late deadline
            with Watchdog(settings, project, run, used):
                last = run_once(settings, project, run, source, used).state.value
            if not coalescer.end():
                return last
            log.info("project %s: triggers arrived during the run; starting the follow-up run", project)
            run_id = None


def clear_stale_runs(model_dir: Path, project: str) -> list[str]:
    """Delete the work folders of runs killed before they could (we hold run.lock: none is live)."""
    runs = project_dir(model_dir, project) / "runs"
    stale = sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    if stale:
        log.info("project %s: deleted the work folders of %d killed runs", project, len(stale))
    return [folder.name for folder in stale]


class Watchdog:
    """Ends the process when a run passes TRAIN_TIMEOUT, whatever step it is stuck in.

    A thread, not SIGALRM (RQ's work horse uses that for its own job timeout), so it works
    in the local child process and under ``rq worker`` alike. When the deadline passes:

    1. take the registry lock: a publish in progress completes first, never half-way;
    2. unless the run has finished meanwhile: if its version was published (the registry
       names its run id), record it promoted, with a note that the deadline came after
       publishing; else record it failed, naming the step it was in, and keep holding
       the lock, so no publish can follow the record;
    3. a published run: release the lock and run retention (``train.retain``, with the
       run's ``used`` images), as the run would have;
    4. delete the run's work folder;
    5. ``os._exit``: the kernel drops run.lock, so the web side sees no live run.
    """

    def __init__(self, settings: Settings, project: str, run: RunRecord, used: set[Path] | None = None) -> None:
        self.settings, self.project, self.run = settings, project, run
        self.used = used if used is not None else set()  # filled by ``run_once`` as the dataset is written
        self._recipe_thread = threading.get_ident()  # whose stack tells the step
        self._done = threading.Event()
        self._firing = threading.Lock()  # the run's end and the watchdog's exit exclude each other
        self._thread = threading.Thread(target=self._watch, daemon=True, name=f"watchdog-{project}")

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._firing:  # blocks only while the watchdog is ending the process
            self._done.set()

    def _watch(self) -> None:
        if not self._done.wait(self.settings.train_timeout):
            self.expire()

    def expire(self) -> None:
        """The deadline's work, steps 1-5 (nothing when the run has ended): called by the watchdog's thread."""
        book = StatusBook(self.settings.model_dir_path, self.project)
        step = current_step(self._recipe_thread) or ((book.current() or self.run).progress or {}).get("phase")
        with self._firing:
            if self._done.is_set():
                return
            self._expire(step)

    def _expire(self, step: str | None) -> None:
        model_dir = self.settings.model_dir_path
        registry, book = Registry(model_dir, self.project), StatusBook(model_dir, self.project)
        limit = f"TRAIN_TIMEOUT={self.settings.train_timeout} s"
        with locked(registry._lock):
            entry = published_by(registry, self.run.run_id)
            if entry is None:
                reason = f"the run took more than {limit}" + (f" (stopped during {step})" if step else "")
                if record_timeout(book, self.run, reason) is None:
                    return  # it finished just now: nothing to stop
                self._end(f"failed: {reason}")  # still holding the lock: the run can publish nothing now
            note = f"{entry.get('decision') or 'promoted'}; the {limit} deadline came after publishing " \
                   f"{entry['version']}" + (f" (during {step})" if step else "")
            record = record_timeout(book, self.run, note, entry)
            if record is None:
                return
        retain(self.settings, self.project, record, self.used)  # outside the lock: retention takes it
        book.save(record)  # with what retention removed
        self._end(f"promoted as {entry['version']}, then stopped: {note}")

    def _end(self, what: str) -> NoReturn:
        """Steps 4 and 5: no cleanup runs in the stuck thread; the kernel releases every lock."""
        shutil.rmtree(project_dir(self.settings.model_dir_path, self.project) / "runs" / self.run.run_id,
                      ignore_errors=True)
        log.error("project %s: run %s %s; ending the training process", self.project, self.run.run_id, what)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(TIMED_OUT)


def published_by(registry: Registry, run_id: str) -> dict[str, Any] | None:
    """The registry entry run ``run_id`` published, or None: the registry, not the run's record, says what serves."""
    return next((v for v in registry.load()["versions"] if v.get("run_id") == run_id), None)


def record_timeout(book: StatusBook, run: RunRecord, reason: str, entry: dict[str, Any] | None = None
                   ) -> RunRecord | None:
    """Record ``run`` failed with ``reason``, or promoted when its registry ``entry`` was published.

    Returns the record written; None (and nothing written) when the run already finished.
    A promoted record takes the version's name and the metrics it was published with.
    """
    data = book.read()
    if any(r.get("run_id") == run.run_id for r in data.get("history") or []):
        return None
    current = book.current()
    record = current if current and current.run_id == run.run_id else RunRecord.from_json(run.to_json())
    if entry is None:
        book.save(state.fail(record, reason))
        return record
    record.metrics = {**record.metrics, **(entry.get("metrics") or {})}
    book.save(state.promote(record, entry["version"], reason))
    return record


def current_step(thread_id: int) -> str | None:
    """The recipe step ``thread_id`` is in now, from its stack (innermost known one), or None."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        if frame.f_code.co_name in STEPS and str(frame.f_globals.get("__name__", "")).startswith("yolo_backend."):
            return STEPS[frame.f_code.co_name]
        frame = frame.f_back
    return None


def main() -> None:
    """``python -m yolo_backend.training.job PROJECT RUN_ID SOURCE`` with the settings as JSON on stdin."""
    project, run_id, source = sys.argv[1:4]
    settings = Settings(**json.loads(sys.stdin.read()))
    configure(settings.log_level)
    run_job(project, run_id, source, settings, one_at_a_time=True)


if __name__ == "__main__":
    main()
