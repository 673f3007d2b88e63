"""Runs waiting for this machine's training slot: a small, bounded, durable queue in MODEL_DIR.

The local runner never starts a process that would only wait: ``add`` appends a run to
``MODEL_DIR/training-queue.json`` and ``pump`` starts the head of the queue once the slot
is free. Both hold ``training-queue.lock``, so any web worker of any gunicorn (or one
started after a crash) can pump, and two never start two runs.

The slot counts as taken while a process holds ``training-slot.lock`` (a running job
holds it for its whole life, see ``job.run_job``) or while the last process started from
the queue is alive (it may still be importing torch, before it takes the lock). The kernel
drops the lock and the process table forgets the pid on death, even on ``kill -9``: a dead
job never keeps the queue stuck.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from ..core.durable import is_locked, locked, read_json, write_json

QUEUE_FILE = "training-queue.json"
SLOT_LOCK = "training-slot.lock"  # taken by job.run_job(one_at_a_time=True)
# A job started on another host (a shared MODEL_DIR) cannot be looked up by pid: it gets this long
# to take the slot lock, after which only the lock counts.
FOREIGN_START_GRACE_S = 60.0

Starter = Callable[[dict[str, Any]], dict[str, Any]]  # starts a queued run; returns its pid and start time


class QueueFull(RuntimeError):
    """TRAIN_MAX_QUEUED runs already wait: the trigger is refused, nothing is queued."""


class RunQueue:
    """The runs of every project waiting for the slot, oldest first (at most ``cap``)."""

    def __init__(self, model_dir: Path, cap: int) -> None:
        self.path = model_dir / QUEUE_FILE
        self.slot = model_dir / SLOT_LOCK
        self.cap = cap
        self._lock = model_dir / "training-queue.lock"

    def read(self) -> dict[str, Any]:
        """``waiting``: runs in order; ``started``: the last run handed to a process (pid, host, start)."""
        return read_json(self.path, None) or {"waiting": [], "started": None}

    def add(self, project: str, run_id: str, source: str) -> int:
        """Queue a run; its position (1 = next). Raises ``QueueFull`` when ``cap`` runs already wait."""
        with locked(self._lock):
            data = self.read()
            if len(data["waiting"]) >= self.cap:
                raise QueueFull(f"the training queue is full: TRAIN_MAX_QUEUED={self.cap} runs already wait for "
                                "the training slot; trigger again when a run has ended")
            data["waiting"].append({"project": project, "run_id": run_id, "source": source, "at": time.time()})
            write_json(self.path, data)
            return len(data["waiting"])

    def pump(self, start: Starter) -> dict[str, Any] | None:
        """Start the oldest waiting run when the slot is free; the run started, or None.

        1. under the queue lock, stop if nothing waits or the slot is taken;
        2. start the head's process (``start`` raising leaves it at the head, for the next pump);
        3. record it as ``started`` and drop it from ``waiting`` in one write.
        """
        with locked(self._lock):
            data = self.read()
            if not data["waiting"] or self.slot_taken(data):
                return None
            entry = data["waiting"][0]
            started = {**entry, **start(entry), "at": time.time()}
            data.update(waiting=data["waiting"][1:], started=started)
            write_json(self.path, data)
            return started

    def slot_taken(self, data: dict[str, Any] | None = None) -> bool:
        if is_locked(self.slot):
            return True
        started = (data or self.read()).get("started")
        return bool(started) and process_alive(started)

    def holds(self, run_id: str) -> bool:
        """Whether the run waits here, or is the one started last and its process still lives."""
        data = self.read()
        if any(entry.get("run_id") == run_id for entry in data["waiting"]):
            return True
        started = data.get("started") or {}
        return started.get("run_id") == run_id and process_alive(started)


def process_alive(job: dict[str, Any]) -> bool:
    """``job["pid"]`` on ``job["host"]`` is alive and is the process that was started (not a reused pid)."""
    if job.get("host") != socket.gethostname():
        return time.time() - float(job.get("at", 0)) < FOREIGN_START_GRACE_S
    try:
        os.kill(int(job["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    stat = proc_stat(int(job["pid"]))
    if stat is None:
        return True  # no /proc: the pid answering is all we know
    state, started = stat
    return state != "Z" and job.get("start_time") in (None, started)  # a zombie has ended; a new start is a reuse


def proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process, from Linux's ``/proc``; None when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None
