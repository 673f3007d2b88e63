"""One chunk of a bulk job, top to bottom: lease it, settle what a dead attempt left, predict, store, record.

The same function runs in the service's background process (``bulk.worker``) and in ``rq worker``
processes (``bulk.worker.rq_chunk``); the ledger makes a second run of a chunk, or a run beside a
task opened in Label Studio, store nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from ..labelstudio import ls_client
from ..labelstudio.prelabel import Outcome, store
from .ledger import Ledger

log = logging.getLogger(__name__)

BATCH = 16  # tasks predicted together (their decoded images held at once)
# Predictions stored per request: Label Studio's import costs about the same per request whatever its size
# (it looks the project up as a whole), so fewer, larger requests; a long video job still stores every 30 s.
STORE_BATCH, STORE_EVERY_S = 64, 30.0


class Engine(Protocol):
    """What predicts: the served model of a project, as ``/predict`` would use it."""

    def version(self, project: str, label_config: str) -> str: ...

    def predict(self, tasks: list[dict[str, Any]], project: str, label_config: str,
                failed: dict[int, str]) -> list[dict[str, Any]]: ...


class InProcessEngine:
    """``serving.backend.YOLOBackend`` in this process, its model loaded, Label Studio's deadlines off."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def version(self, project: str, label_config: str) -> str:
        self.backend.store.wait(self.backend.settings.load_wait_seconds)
        return str(self.backend.setup(project, label_config)["model_version"])

    def predict(self, tasks: list[dict[str, Any]], project: str, label_config: str,
                failed: dict[int, str]) -> list[dict[str, Any]]:
        return self.backend.predict(tasks, project=project, label_config_xml=label_config, video_deadline=False,
                                    failed=failed)


@dataclass
class ChunkResult:
    stored: int = 0
    failed: int = 0
    skipped: int = 0  # opened in Label Studio first, or stored by an attempt that died
    stopped: str = ""  # why the attempt stopped early: "cancelled", "lease lost", "held"


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def run_chunk(ledger: Ledger, job_id: str, chunk: int, engine: Engine, client: Any, lease_s: float,
              owner: str | None = None, storer: Storer | None = None) -> ChunkResult:
    """1. lease, 2. settle the dead attempt's tasks, 3. per batch: claim, predict; every STORE_BATCH predictions
    (or STORE_EVERY_S): renew, store, record."""
    owner = owner or owner_id()
    result = ChunkResult()
    claimed = ledger.claim_chunk(job_id, chunk, owner, lease_s)
    if claimed is None:
        result.stopped = "held"  # done, leased by a live attempt, or its job ended
        return result
    job = claimed.job
    project = int(job.project)
    todo = list(claimed.todo)
    settled: dict[int, tuple[str, str | None]] = {}
    for task, version in claimed.unsure:  # stored before the attempt died, or not: Label Studio knows
        if version and ls_client.has_prediction(client, int(task["id"]), version):
            settled[int(task["id"])] = ("stored", "stored by an earlier attempt")
        else:
            todo.append(task)
    if settled:
        ledger.mark(job_id, settled)
        result.skipped += len(settled)
    version = engine.version(job.project, job.label_config)
    pending: list[tuple[dict[str, Any], dict[str, Any], str | None]] = []  # (task, answer, why it failed)
    last_store = time.monotonic()
    for start in range(0, len(todo), BATCH):
        batch = todo[start:start + BATCH]
        mine = set(ledger.claim_tasks(job_id, [int(t["id"]) for t in batch], owner, version))
        result.skipped += len(batch) - len(mine)  # opened in Label Studio meanwhile: /predict answered them
        batch = [t for t in batch if int(t["id"]) in mine]
        failed: dict[int, str] = {}
        with _heartbeat(ledger, job_id, chunk, owner, lease_s):  # a long video keeps the lease while it is tracked
            answers = _predict(engine, batch, job.project, job.label_config, failed) if batch else []
        pending += [(task, answer, failed.get(i)) for i, (task, answer) in enumerate(zip(batch, answers))]
        last = start + BATCH >= len(todo)
        if pending and (last or len(pending) >= STORE_BATCH or time.monotonic() - last_store >= STORE_EVERY_S):
            if not ledger.renew(job_id, chunk, owner, lease_s):  # cancelled, or the lease was lost: store nothing
                result.stopped = "lease lost" if (ledger.job(job_id) or job).state == "running" else "cancelled"
                return result
            if last and storer is not None:  # stored while the next chunk is predicted; the lease covers it
                storer.submit(lambda rows=pending: _finish(ledger, client, job_id, chunk, owner, project, version,
                                                           rows, result))
                return result
            _store(ledger, client, job_id, project, version, pending, result)
            pending, last_store = [], time.monotonic()
    _finish(ledger, client, job_id, chunk, owner, project, version, pending, result)
    return result


class Storer:
    """One store in flight beside the predicting (``drain``): Label Studio's import and the model overlap."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-store")
        self._last: Future | None = None

    def submit(self, work: Callable[[], None]) -> None:
        self.wait()  # at most one waiting: memory stays one chunk's predictions
        self._last = self._pool.submit(work)

    def wait(self) -> None:
        """The store in flight, finished; its error logged (its chunk's lease runs out and it is retried)."""
        if self._last is not None:
            try:
                self._last.result()
            except Exception as exc:
                log.error("bulk: storing a chunk failed, retried after BULK_LEASE_SECONDS: %s", exc)
            self._last = None

    def close(self) -> None:
        self.wait()
        self._pool.shutdown()


def _finish(ledger: Ledger, client: Any, job_id: str, chunk: int, owner: str, project: int, version: str,
            pending: list[tuple[dict[str, Any], dict[str, Any], str | None]], result: ChunkResult) -> None:
    if pending:
        _store(ledger, client, job_id, project, version, pending, result)
    ledger.finish_chunk(job_id, chunk, owner)
    log.info("bulk job %s chunk %d: %d stored, %d failed, %d skipped", job_id, chunk, result.stored, result.failed,
             result.skipped)


def _store(ledger: Ledger, client: Any, job_id: str, project: int, version: str,
           pending: list[tuple[dict[str, Any], dict[str, Any], str | None]], result: ChunkResult) -> None:
    """Store the predicted ones in one request (``prelabel.store``), then record each task's outcome."""
    outcome = Outcome(version=version)
    store(client, project, [{"task": int(task["id"]), "result": answer["result"], "score": answer.get("score"),
                             "model_version": version} for task, answer, why in pending if why is None], outcome)
    refused = {tid: f"{kind}: {detail}" for tid, kind, detail in outcome.failed}
    marks: dict[int, tuple[str, str | None]] = {}
    for task, _, why in pending:
        reason = why or refused.get(int(task["id"]))
        marks[int(task["id"])] = ("failed", reason[:300]) if reason else ("stored", None)
    ledger.mark(job_id, marks)
    result.failed += sum(state == "failed" for state, _ in marks.values())
    result.stored += sum(state == "stored" for state, _ in marks.values())


@contextlib.contextmanager
def _heartbeat(ledger: Ledger, job_id: str, chunk: int, owner: str, lease_s: float) -> Iterator[None]:
    """Renew the lease every third of it while the batch is predicted: only a dead process loses it."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease_s / 3):
            ledger.renew(job_id, chunk, owner, lease_s)

    thread = threading.Thread(target=beat, daemon=True, name="bulk-lease")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _predict(engine: Engine, batch: list[dict[str, Any]], project: str, label_config: str,
             failed: dict[int, str]) -> list[dict[str, Any]]:
    """The batch at once; if that raises (a malformed task), task by task, so one bad task costs only itself."""
    try:
        return engine.predict(batch, project, label_config, failed)
    except Exception as exc:
        log.warning("bulk: a batch of %d failed (%s); predicting its tasks one by one", len(batch), exc)
    answers: list[dict[str, Any]] = []
    for i, task in enumerate(batch):
        one: dict[int, str] = {}
        try:
            answers += engine.predict([task], project, label_config, one)
            if one:
                failed[i] = one[0]
        except Exception as exc:
            answers.append({"result": []})
            failed[i] = f"{getattr(exc, 'kind', type(exc).__name__)}: {exc}"
    return answers
