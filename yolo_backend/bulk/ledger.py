"""Who predicts which task: one SQLite file in MODEL_DIR that every process of the service shares.

A bulk job is a project's tasks that a ``/predict`` could not finish inside PREDICT_BUDGET_SECONDS
(or that ``yolo-ls prelabel --backend`` asked for), split into chunks. Each task row moves once,
under a write transaction, so two writers never store the same task:

    queued --(a chunk claims it)--> claimed --(stored in Label Studio)--> stored
       |                                 \\--(the image failed)--> failed
       \\--(opened in Label Studio first: /predict answers it itself)--> opened

A chunk is held by one attempt at a time through a lease; an attempt that dies (a killed worker)
loses the lease after BULK_LEASE_SECONDS and the chunk is run again: its stored tasks are skipped,
and the tasks it had claimed but not marked are looked up in Label Studio before anything is
stored twice. SQLite's locking needs a local (or lock-honouring) MODEL_DIR, as the training queue does.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

FILE = "bulk-jobs.sqlite3"
KEEP_S = 7 * 86400  # finished jobs are listed this long, then deleted (the ledger does not grow without end)
ACTIVE = ("queued", "claimed")  # a task in one of these states belongs to its job until it ends
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, project TEXT NOT NULL, version TEXT NOT NULL,
    label_config TEXT NOT NULL, origin TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL,
    finished REAL, total INTEGER NOT NULL, first_stored REAL);
CREATE TABLE IF NOT EXISTS tasks (job TEXT NOT NULL, project TEXT NOT NULL, task INTEGER NOT NULL,
    chunk INTEGER NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL, owner TEXT, version TEXT, detail TEXT,
    at REAL, PRIMARY KEY (job, task));
CREATE INDEX IF NOT EXISTS tasks_by_project ON tasks (project, task, state);
CREATE INDEX IF NOT EXISTS tasks_by_chunk ON tasks (job, chunk, state);
CREATE TABLE IF NOT EXISTS chunks (job TEXT NOT NULL, chunk INTEGER NOT NULL, state TEXT NOT NULL,
    owner TEXT, lease REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (job, chunk));
"""


@dataclass(frozen=True)
class Job:
    id: str
    project: str
    version: str
    label_config: str
    origin: str  # "retrieve" (Label Studio's Retrieve predictions) or "prelabel" (yolo-ls prelabel --backend)
    state: str  # running, done, cancelled
    created: float
    finished: float | None
    total: int


@dataclass(frozen=True)
class Claimed:
    """A chunk handed to one attempt: its tasks still to do, and those a dead attempt may have stored."""

    job: Job
    chunk: int
    todo: list[dict[str, Any]]
    unsure: list[tuple[dict[str, Any], str]]  # (task, the version the dead attempt predicted it with)


class Ledger:
    def __init__(self, model_dir: Path) -> None:
        self.path = model_dir / FILE
        model_dir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # readers (status, /predict) never wait for a chunk's write
            db.executescript(SCHEMA)
        finally:
            db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front (BEGIN IMMEDIATE), so read-then-update steps are atomic."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            yield db
        finally:
            db.close()

    # -- jobs -------------------------------------------------------------------------------------
    def create(self, project: str, version: str, label_config: str, tasks: list[dict[str, Any]], chunk_size: int,
               origin: str) -> Job | None:
        """A job for the tasks no running job of the project holds yet; None when none is left."""
        now = time.time()
        job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with self._write() as db:
            self._forget_old(db, now)
            held = self._held(db, project, [int(t["id"]) for t in tasks])
            fresh, seen = [], set(held)
            for task in tasks:
                if int(task["id"]) not in seen:
                    seen.add(int(task["id"]))
                    fresh.append(task)
            if not fresh:
                return None
            db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, 'running', ?, NULL, ?, NULL)",
                       (job_id, project, version, label_config, origin, now, len(fresh)))
            db.executemany("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, 'queued', NULL, NULL, NULL, ?)",
                           [(job_id, project, int(t["id"]), i // chunk_size, json.dumps(t), now)
                            for i, t in enumerate(fresh)])
            db.executemany("INSERT INTO chunks (job, chunk, state) VALUES (?, ?, 'waiting')",
                           [(job_id, c) for c in range((len(fresh) + chunk_size - 1) // chunk_size)])
        return self.job(job_id)

    def job(self, job_id: str) -> Job | None:
        with self._read() as db:
            row = db.execute("SELECT id, project, version, label_config, origin, state, created, finished, total "
                             "FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job(*row) if row else None

    def jobs(self, project: str | None = None, running_only: bool = False) -> list[Job]:
        query = "SELECT id, project, version, label_config, origin, state, created, finished, total FROM jobs"
        terms, args = [], []
        if project is not None:
            terms.append("project = ?")
            args.append(project)
        if running_only:
            terms.append("state = 'running'")
        with self._read() as db:
            rows = db.execute(query + (" WHERE " + " AND ".join(terms) if terms else "") + " ORDER BY created",
                              args).fetchall()
        return [Job(*row) for row in rows]

    def cancel(self, job_id: str) -> bool:
        """Stop a running job: its queued tasks are released (opening them predicts as usual)."""
        with self._write() as db:
            changed = db.execute("UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ? AND state = "
                                 "'running'", (time.time(), job_id)).rowcount
            db.execute("UPDATE tasks SET state = 'cancelled' WHERE job = ? AND state = 'queued'", (job_id,))
        return bool(changed)

    def progress(self, job_id: str) -> dict[str, Any]:
        """Counts by task state, the storing rate since the first store, and the time left at that rate."""
        job = self.job(job_id)
        if job is None:
            raise KeyError(job_id)
        with self._read() as db:
            counts = dict(db.execute("SELECT state, COUNT(*) FROM tasks WHERE job = ? GROUP BY state",
                                     (job_id,)).fetchall())
            first = db.execute("SELECT first_stored FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
            last = db.execute("SELECT MAX(at) FROM tasks WHERE job = ? AND state = 'stored'", (job_id,)).fetchone()[0]
            failures = db.execute("SELECT task, detail FROM tasks WHERE job = ? AND state = 'failed' ORDER BY task "
                                  "LIMIT 20", (job_id,)).fetchall()
        stored, opened = counts.get("stored", 0), counts.get("opened", 0)
        left = counts.get("queued", 0) + counts.get("claimed", 0)
        end = (job.finished or time.time()) if job.state != "running" else time.time()
        span = ((last if job.state != "running" and last else end) - first) if first else 0.0
        rate = (stored - 1) / span if stored > 1 and span > 0 else None  # tasks per second, between stores
        return {"job": job.id, "project": job.project, "state": job.state, "origin": job.origin,
                "model_version": job.version, "created": job.created, "finished": job.finished, "total": job.total,
                "stored": stored, "opened": opened, "failed": counts.get("failed", 0), "left": left,
                "cancelled": counts.get("cancelled", 0), "rate_per_s": round(rate, 2) if rate else None,
                "eta_s": round(left / rate, 1) if rate and job.state == "running" else None,
                "failures": [{"task": task, "reason": detail} for task, detail in failures]}

    # -- what /predict asks -----------------------------------------------------------------------
    def held(self, project: str, task_ids: list[int]) -> dict[int, str]:
        """Task id -> its state, for the tasks a running job of ``project`` still holds (queued or claimed)."""
        with self._read() as db:
            return self._held(db, project, task_ids)

    def take_over(self, project: str, task_id: int) -> str | None:
        """A task opened in Label Studio: taken from its job if still queued. Returns the state it was found in
        (``queued``: now ours to answer; ``claimed``: a chunk is storing it), or None when no job holds it."""
        with self._write() as db:
            found = self._held(db, project, [task_id]).get(task_id)
            if found == "queued":
                db.execute("UPDATE tasks SET state = 'opened', at = ? WHERE project = ? AND task = ? AND state = "
                           "'queued'", (time.time(), project, task_id))
        return found

    def task_state(self, project: str, task_id: int) -> str | None:
        """The task's state in the newest job that listed it, or None."""
        with self._read() as db:
            row = db.execute("SELECT t.state FROM tasks t JOIN jobs j ON j.id = t.job WHERE t.project = ? AND "
                             "t.task = ? ORDER BY j.created DESC LIMIT 1", (project, task_id)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _held(db: sqlite3.Connection, project: str, task_ids: list[int]) -> dict[int, str]:
        held: dict[int, str] = {}
        for start in range(0, len(task_ids), 500):
            part = task_ids[start:start + 500]
            rows = db.execute(f"SELECT t.task, t.state FROM tasks t JOIN jobs j ON j.id = t.job WHERE t.project = ? "
                              f"AND j.state = 'running' AND t.state IN ('queued', 'claimed') AND t.task IN "
                              f"({','.join('?' * len(part))})", [project, *part]).fetchall()
            held.update({int(task): state for task, state in rows})
        return held

    # -- what a chunk attempt does ----------------------------------------------------------------
    def stalled_chunks(self) -> list[tuple[str, int, int]]:
        """(job, chunk, attempts so far) of running jobs, not done and not leased now: to offer again."""
        with self._read() as db:
            return [(job, chunk, attempts) for job, chunk, attempts in db.execute(
                "SELECT c.job, c.chunk, c.attempts FROM chunks c JOIN jobs j ON j.id = c.job WHERE j.state = "
                "'running' AND c.state != 'done' AND c.lease < ? ORDER BY j.created, c.chunk", (time.time(),))]

    def open_chunks(self, job_id: str | None = None) -> list[tuple[str, int]]:
        """(job, chunk) pairs of running jobs not done and not leased now: what a worker may pick up."""
        return [(job, chunk) for job, chunk, _ in self.stalled_chunks() if job_id in (None, job)]

    def claim_chunk(self, job_id: str, chunk: int, owner: str, lease_s: float) -> Claimed | None:
        """Take the chunk's lease unless another attempt holds it or it is done; its tasks left to do."""
        now = time.time()
        with self._write() as db:
            row = db.execute("SELECT c.state, c.owner, c.lease, j.state FROM chunks c JOIN jobs j ON j.id = c.job "
                             "WHERE c.job = ? AND c.chunk = ?", (job_id, chunk)).fetchone()
            if row is None or row[0] == "done" or (row[1] != owner and row[2] >= now):
                return None
            if row[3] != "running":
                db.execute("UPDATE chunks SET state = 'done' WHERE job = ? AND chunk = ?", (job_id, chunk))
                self._close_job(db, job_id, now)
                return None
            db.execute("UPDATE chunks SET state = 'running', owner = ?, lease = ?, attempts = attempts + 1 "
                       "WHERE job = ? AND chunk = ?", (owner, now + lease_s, job_id, chunk))
            rows = db.execute("SELECT body, state, owner, version FROM tasks WHERE job = ? AND chunk = ? AND state "
                              "IN ('queued', 'claimed') ORDER BY task", (job_id, chunk)).fetchall()
        job = self.job(job_id)
        assert job is not None
        todo = [json.loads(body) for body, state, _, _ in rows if state == "queued"]
        unsure = [(json.loads(body), version) for body, state, was, version in rows
                  if state == "claimed" and was != owner]
        todo += [json.loads(body) for body, state, was, _ in rows if state == "claimed" and was == owner]
        return Claimed(job, chunk, todo, unsure)

    def renew(self, job_id: str, chunk: int, owner: str, lease_s: float) -> bool:
        """Extend the lease; False when another attempt took the chunk (this one then stops) or the job ended."""
        with self._write() as db:
            return bool(db.execute("UPDATE chunks SET lease = ? WHERE job = ? AND chunk = ? AND owner = ? AND "
                                   "state = 'running' AND (SELECT state FROM jobs WHERE id = ?) = 'running'",
                                   (time.time() + lease_s, job_id, chunk, owner, job_id)).rowcount)

    def claim_tasks(self, job_id: str, task_ids: list[int], owner: str, version: str) -> list[int]:
        """queued -> claimed for this attempt, which holds the chunk's lease: a task claimed by another attempt
        is a dead attempt's (settled against Label Studio first, ``Claimed.unsure``); the ids it now holds."""
        with self._write() as db:
            mine = []
            for task_id in task_ids:
                if db.execute("UPDATE tasks SET state = 'claimed', owner = ?, version = ?, at = ? WHERE job = ? AND "
                              "task = ? AND state IN ('queued', 'claimed')",
                              (owner, version, time.time(), job_id, task_id)).rowcount:
                    mine.append(task_id)
        return mine

    def mark(self, job_id: str, outcomes: dict[int, tuple[str, str | None]]) -> None:
        """Task id -> (stored | failed | opened, detail) after Label Studio answered."""
        now = time.time()
        with self._write() as db:
            db.executemany("UPDATE tasks SET state = ?, detail = ?, at = ? WHERE job = ? AND task = ?",
                           [(state, detail, now, job_id, task) for task, (state, detail) in outcomes.items()])
            if any(state == "stored" for state, _ in outcomes.values()):
                db.execute("UPDATE jobs SET first_stored = COALESCE(first_stored, ?) WHERE id = ?", (now, job_id))

    def finish_chunk(self, job_id: str, chunk: int, owner: str) -> None:
        with self._write() as db:
            db.execute("UPDATE chunks SET state = 'done', lease = 0 WHERE job = ? AND chunk = ? AND owner = ?",
                       (job_id, chunk, owner))
            self._close_job(db, job_id, time.time())

    @staticmethod
    def _close_job(db: sqlite3.Connection, job_id: str, now: float) -> None:
        if not db.execute("SELECT 1 FROM chunks WHERE job = ? AND state != 'done' LIMIT 1", (job_id,)).fetchone():
            db.execute("UPDATE jobs SET state = 'done', finished = ? WHERE id = ? AND state = 'running'",
                       (now, job_id))

    @staticmethod
    def _forget_old(db: sqlite3.Connection, now: float) -> None:
        old = [row[0] for row in db.execute("SELECT id FROM jobs WHERE finished IS NOT NULL AND finished < ?",
                                            (now - KEEP_S,))]
        for job_id in old:
            for table, key in (("tasks", "job"), ("chunks", "job"), ("jobs", "id")):
                db.execute(f"DELETE FROM {table} WHERE {key} = ?", (job_id,))
