"""The web side of bulk jobs: start one, keep its chunks moving, report and cancel.

Chunks run in one niced background process of the service (``LocalChunks``), or, with REDIS_URL,
as RQ jobs on BULK_QUEUE that ``rq worker`` processes on any machine sharing MODEL_DIR take
(``RQChunks``). Either way a watcher thread in each web worker re-offers, while a job runs, the
chunks whose attempt stopped reporting (a killed worker), and restarts the background process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import threading
import time
from typing import Any, Protocol

from ..config import Settings
from ..core.durable import is_locked
from ..core.processes import child_env
from ..errors import LabelStudioUnavailable
from .ledger import Job, Ledger
from .worker import lock_path

log = logging.getLogger(__name__)

WATCH_S = 2.0
RQ_FUNCTION = "yolo_backend.bulk.worker.rq_chunk"


class Chunks(Protocol):
    name: str

    def offer(self, ledger: Ledger, job: Job) -> None: ...

    def sweep(self, ledger: Ledger) -> None: ...


class LocalChunks:
    """One background process per MODEL_DIR drains every waiting chunk, then exits (``bulk.worker``)."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._failures = 0  # the background process's exits with an error in a row
        self._not_before = 0.0

    def offer(self, ledger: Ledger, job: Job) -> None:
        self.sweep(ledger)

    def sweep(self, ledger: Ledger) -> None:
        """Start the process when chunks wait and none runs (its file lock is free and our child has ended).

        A process that exits with an error is started again after 2, 4, 8 ... s (at most BULK_LEASE_SECONDS),
        never in a tight loop that loads the model again and again."""
        with self._lock:
            if self._child is not None:
                code = self._child.poll()
                if code is None:
                    return
                self._failures = self._failures + 1 if code else 0
                if code:
                    delay = min(2.0 ** self._failures, self.settings.bulk_lease_seconds)
                    self._not_before = time.monotonic() + delay
                    log.error("bulk worker (process %d) exited with %d; next start in %.0f s (see its log lines "
                              "above)", self._child.pid, code, delay)
                self._child = None
            if time.monotonic() < self._not_before:
                return
            if is_locked(lock_path(self.settings.model_dir_path)) or not ledger.open_chunks():
                return
            self._child = subprocess.Popen([sys.executable, "-m", "yolo_backend.bulk.worker"], stdin=subprocess.PIPE,
                                           env=child_env(), text=True)
            child = self._child
        threading.Thread(target=child.communicate, args=(json.dumps(dataclasses.asdict(self.settings)),),
                         daemon=True, name="bulk-worker").start()  # settings in, and no zombie once it ends
        log.info("bulk worker started (process %d)", child.pid)


class RQChunks:
    """Each chunk is an RQ job; a chunk whose attempt died is enqueued again under a new id, once."""

    name = "rq"

    def __init__(self, settings: Settings) -> None:
        from redis import Redis
        from rq import Queue

        self.settings = settings
        self.redis = Redis.from_url(settings.redis_url, socket_connect_timeout=0.5, socket_timeout=2.0)
        self.queue = Queue(settings.bulk_queue, connection=self.redis)

    def offer(self, ledger: Ledger, job: Job) -> None:
        for _, chunk in ledger.open_chunks(job.id):
            self._enqueue(job.id, chunk, 0)

    def sweep(self, ledger: Ledger) -> None:
        for job_id, chunk, attempts in ledger.stalled_chunks():
            self._enqueue(job_id, chunk, attempts)

    def _enqueue(self, job_id: str, chunk: int, attempts: int) -> None:
        from rq.job import Job as RQJob

        rq_id = f"bulk-{job_id}-{chunk}-{attempts}"  # one RQ job per chunk and attempt: sweeps never pile up
        if RQJob.exists(rq_id, connection=self.redis):
            return
        self.queue.enqueue(RQ_FUNCTION, job_id, chunk, job_id=rq_id, job_timeout=6 * 3600, result_ttl=86400,
                           failure_ttl=7 * 86400, description=f"bulk job {job_id} chunk {chunk}")


class BulkJobs:
    """Jobs of every project in MODEL_DIR's ledger, and the engine that runs their chunks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ledger = Ledger(settings.model_dir_path)
        self.chunks: Chunks = RQChunks(settings) if settings.redis_url else LocalChunks(settings)
        self._watcher: threading.Thread | None = None
        self._watch_lock = threading.Lock()
        if self.ledger.jobs(running_only=True):  # left running by an earlier life of the service
            self._watch()

    @property
    def can_store(self) -> bool:
        """Jobs write through Label Studio's API: without its URL and key, /predict keeps every task itself."""
        return bool(self.settings.label_studio_url and self.settings.label_studio_api_key)

    def start(self, project: str, version: str, label_config: str, tasks: list[dict[str, Any]],
              origin: str) -> Job | None:
        job = self.ledger.create(project, version, label_config, tasks, self.settings.bulk_chunk, origin)
        if job is not None:
            log.info("project %s: bulk job %s for %d tasks (%s), chunks of %d, %s", project, job.id, job.total,
                     origin, self.settings.bulk_chunk, self.chunks.name)
            try:
                self.chunks.offer(self.ledger, job)
            except Exception as exc:  # Redis away, no process slot: the watcher offers the chunks again
                log.warning("project %s: bulk job %s: chunks not offered yet (%s); retrying every %.0f s", project,
                            job.id, exc, WATCH_S)
            self._watch()
        return job

    def status(self, project: str | None = None, job_id: str | None = None) -> dict[str, Any]:
        jobs = [j for j in self.ledger.jobs(project) if job_id in (None, j.id)]
        if job_id and not jobs:
            raise KeyError(f"no bulk job {job_id}")
        return {"runner": self.chunks.name, "jobs": [self.ledger.progress(j.id) for j in jobs]}

    def cancel(self, job_id: str) -> dict[str, Any]:
        if self.ledger.job(job_id) is None:
            raise KeyError(f"no bulk job {job_id}")
        self.ledger.cancel(job_id)
        return self.status(job_id=job_id)

    def _watch(self) -> None:
        with self._watch_lock:
            if self._watcher is not None and self._watcher.is_alive():  # not alive in a forked child
                return
            self._watcher = threading.Thread(target=self._loop, daemon=True, name="bulk-watch")
            self._watcher.start()

    def _loop(self) -> None:
        """While a job runs: re-offer stalled chunks (and restart the local process); then end."""
        while True:
            time.sleep(WATCH_S)
            try:
                self.chunks.sweep(self.ledger)
            except Exception as exc:  # Redis away, no process slot...: the next sweep tries again
                log.warning("bulk jobs: sweep failed: %s", exc)
            with self._watch_lock:
                if not self.ledger.jobs(running_only=True):
                    self._watcher = None
                    return


def start_for_project(jobs: BulkJobs, backend: Any, project: str) -> dict[str, Any]:
    """``yolo-ls prelabel --backend``: a job for every task of the project lacking the current version."""
    from ..labelstudio import ls_client
    from ..labelstudio.prelabel import unpredicted

    if not jobs.can_store:
        raise ValueError("this service has no LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY: it cannot store predictions")
    try:
        client = ls_client.connect(jobs.settings.label_studio_url, jobs.settings.label_studio_api_key)
        config = ls_client.label_config(client, int(project))
    except Exception as exc:  # unreachable, refused key, no such project: said, not a 500
        raise LabelStudioUnavailable(f"project {project}: Label Studio answered {ls_client.error_text(exc)}") from exc
    backend.store.wait(jobs.settings.load_wait_seconds)
    version = str(backend.setup(project, config)["model_version"])
    todo, total = unpredicted(client, int(project), version)
    job = jobs.start(project, version, config, todo, origin="prelabel") if todo else None
    return {"model_version": version, "tasks": total, "already_predicted": total - len(todo),
            "held_by_running_jobs": len(todo) - (job.total if job else 0), "job": job.id if job else None}
