"""Two ways to execute a run behind one ``submit``: a local child process, or an RQ queue.

``submit`` returns at once with a small job description (stored in the project's
control file); ``alive(job)`` tells whether such a job will still run, which the
coalescer asks when it finds a scheduled run whose process holds no lock.
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
from pathlib import Path
from typing import Any, Protocol

from ..config import Settings

log = logging.getLogger(__name__)

JOB_FUNCTION = "yolo_backend.training.job.run_job"


class Runner(Protocol):
    name: str

    def submit(self, project: str, run_id: str) -> dict[str, Any]: ...

    def alive(self, job: dict[str, Any]) -> bool: ...


class LocalRunner:
    """Embedded default: each run is a child process of the web worker, niced, no extra services."""

    name = "local"

    def __init__(self, settings: Settings, source: str) -> None:
        self.settings = settings
        self.source = source

    def submit(self, project: str, run_id: str) -> dict[str, Any]:
        """Start ``python -m yolo_backend.training.job``; settings (with the API key) go on stdin, not argv."""
        child = subprocess.Popen([sys.executable, "-m", "yolo_backend.training.job", project, run_id, self.source],
                                 stdin=subprocess.PIPE, env=_child_env(), text=True)
        payload = json.dumps(dataclasses.asdict(self.settings))
        threading.Thread(target=_feed_and_reap, args=(child, payload, project), daemon=True,
                         name=f"training-{project}").start()
        return {"runner": self.name, "pid": child.pid, "host": socket.gethostname()}

    def alive(self, job: dict[str, Any]) -> bool:
        if job.get("host") != socket.gethostname():
            return True  # another machine's child: only its run.lock can tell
        try:
            os.kill(int(job["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, KeyError, ValueError):
            return True
        return True


def _child_env() -> dict[str, str]:
    """The parent's environment, with this package importable whatever the working directory."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    # Ultralytics' progress bars would flood the service log; the run logs one line per epoch itself.
    return {"YOLO_VERBOSE": "False", "YOLO_OFFLINE": "1", **os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _feed_and_reap(child: subprocess.Popen, payload: str, project: str) -> None:
    """Hand the settings over, then wait, so the finished child leaves no zombie."""
    try:
        child.communicate(payload)
    except OSError as exc:
        log.warning("project %s: training process %d: %s", project, child.pid, exc)
    if child.returncode:
        log.warning("project %s: training process %d exited with %d", project, child.pid, child.returncode)


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
        job = self.queue.enqueue(JOB_FUNCTION, project, run_id, self.source,
                                 job_timeout=self.settings.train_timeout + 300, result_ttl=7 * 86400,
                                 failure_ttl=7 * 86400, description=f"train project {project} ({run_id})")
        return {"runner": self.name, "id": job.id}

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
