"""Two ways to execute a run behind one ``submit``: a local child process, or an RQ queue.

``submit`` returns at once with a small job description (stored in the project's
control file) or raises ``QueueFull`` when TRAIN_MAX_QUEUED runs already wait;
``alive(job)`` tells whether such a job will still run, which the coalescer asks when
it finds a scheduled run whose process holds no lock.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from ..config import Settings
from ..core.durable import locked
from ..core.processes import child_env
from .run_queue import QueueFull, RunQueue, proc_stat, process_alive

log = logging.getLogger(__name__)

JOB_FUNCTION = "yolo_backend.training.job.run_job"
WATCH_S = 2.0  # how often a web worker looks for runs left waiting by a worker that died


class Runner(Protocol):
    name: str

    def submit(self, project: str, run_id: str) -> dict[str, Any]: ...

    def alive(self, job: dict[str, Any]) -> bool: ...


class LocalRunner:
    """Embedded default: runs wait in ``MODEL_DIR/training-queue.json``; one child process at a time executes.

    A child (``python -m yolo_backend.training.job``, niced) is started only when the training slot
    is free: at ``submit``, when the previous child ends (its reaper thread pumps), and by a watcher
    thread in every web worker while runs wait, which is what restarts the queue after the worker
    that started the last child died.
    """

    name = "local"

    def __init__(self, settings: Settings, source: str) -> None:
        self.settings = settings
        self.source = source
        self.queue = RunQueue(settings.model_dir_path, settings.train_max_queued)
        if self.queue.read()["waiting"]:  # left by a previous life of the service
            _watch(self)

    def submit(self, project: str, run_id: str) -> dict[str, Any]:
        """Queue the run (``QueueFull`` when the queue is full) and start it now if the slot is free."""
        self.queue.add(project, run_id, self.source)
        _watch(self)
        self.pump()
        return {"runner": self.name, "run_id": run_id, "host": socket.gethostname()}

    def alive(self, job: dict[str, Any]) -> bool:
        if "run_id" not in job:  # a child started directly by an earlier version
            return process_alive({**job, "at": 0.0}) if job.get("host") == socket.gethostname() else True
        return job.get("host") != socket.gethostname() or self.queue.holds(job["run_id"])

    def pump(self) -> dict[str, Any] | None:
        """Start the next waiting run if the slot is free; problems are logged, the watcher retries."""
        try:
            return self.queue.pump(self._start)
        except OSError as exc:  # no process slots, MODEL_DIR unwritable...: the run keeps its place
            log.error("could not start the next training run: %s", exc)
            return None

    def _start(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Start ``python -m yolo_backend.training.job``; settings (with the API key) go on stdin, not argv."""
        project = entry["project"]
        child = subprocess.Popen([sys.executable, "-m", "yolo_backend.training.job", project, entry["run_id"],
                                  entry.get("source", self.source)],
                                 stdin=subprocess.PIPE, env=child_env(), text=True)
        payload = json.dumps(dataclasses.asdict(self.settings))
        threading.Thread(target=_feed_and_reap, args=(child, payload, project, self.pump), daemon=True,
                         name=f"training-{project}").start()
        log.info("project %s: training run %s started (process %d)", project, entry["run_id"], child.pid)
        stat = proc_stat(child.pid)
        return {"pid": child.pid, "host": socket.gethostname(), "start_time": stat[1] if stat else None}


def _feed_and_reap(child: subprocess.Popen, payload: str, project: str, then: Callable[[], Any]) -> None:
    """Hand the settings over, wait (so the finished child leaves no zombie), then start the next run."""
    try:
        child.communicate(payload)
    except OSError as exc:
        log.warning("project %s: training process %d: %s", project, child.pid, exc)
    if child.returncode:
        log.warning("project %s: training process %d exited with %d", project, child.pid, child.returncode)
    then()


_watchers: dict[tuple[int, Path], threading.Thread] = {}  # (pid, MODEL_DIR) -> its watcher; none after a fork
_watchers_lock = threading.Lock()


def _watch(runner: LocalRunner) -> None:
    """Make sure this process pumps ``runner``'s queue every WATCH_S while runs wait (one thread per queue)."""
    key = (os.getpid(), runner.queue.path)
    with _watchers_lock:
        if key in _watchers and _watchers[key].is_alive():
            return
        thread = threading.Thread(target=_watcher, args=(runner, key), daemon=True, name="training-queue")
        _watchers[key] = thread
        thread.start()


def _watcher(runner: LocalRunner, key: tuple[int, Path]) -> None:
    """Pump until nothing waits; the check and the exit hold the lock ``_watch`` takes, so no run is missed."""
    while True:
        time.sleep(WATCH_S)
        runner.pump()
        with _watchers_lock:
            if not runner.queue.read()["waiting"]:
                del _watchers[key]
                return


class RQRunner:
    """With REDIS_URL: runs wait in an RQ queue and ``rq worker`` processes (any machine) execute them."""

    name = "rq"

    def __init__(self, settings: Settings, source: str) -> None:
        from redis import Redis
        from rq import Queue

        self.settings = settings
        self.source = source
        # Short timeouts: the webhook must answer within 1 s even when Redis is down.
        self.redis = Redis.from_url(settings.redis_url, socket_connect_timeout=0.5, socket_timeout=2.0)
        self.queue = Queue(settings.train_queue, connection=self.redis)

    def submit(self, project: str, run_id: str) -> dict[str, Any]:
        """Enqueue, unless TRAIN_MAX_QUEUED jobs already wait (counted and enqueued under one lock)."""
        with locked(self.settings.model_dir_path / "training-queue.lock"):
            waiting = self.queue.count
            if waiting >= self.settings.train_max_queued:
                raise QueueFull(f"the training queue is full: {waiting} runs wait in the RQ queue "
                                f"{self.settings.train_queue!r} (TRAIN_MAX_QUEUED={self.settings.train_max_queued}); "
                                "trigger again when a run has ended")
            job = self._enqueue(project, run_id)
        return {"runner": self.name, "id": job.id}

    def _enqueue(self, project: str, run_id: str) -> Any:
        return self.queue.enqueue(JOB_FUNCTION, project, run_id, self.source,
                                  job_timeout=self.settings.train_timeout + 300, result_ttl=7 * 86400,
                                  failure_ttl=7 * 86400, description=f"train project {project} ({run_id})")

    def alive(self, job: dict[str, Any]) -> bool:
        from redis.exceptions import RedisError
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        try:
            status = Job.fetch(str(job.get("id")), connection=self.redis).get_status()
        except NoSuchJobError:
            return False
        except RedisError:
            return True  # cannot tell: never start a second run on a guess
        return str(getattr(status, "value", status)) in ("queued", "started", "deferred", "scheduled")


def make_runner(settings: Settings, source: str) -> Runner:
    return RQRunner(settings, source) if settings.redis_url else LocalRunner(settings, source)
