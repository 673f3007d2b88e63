"""Named states of a training run, and the one small function per move between them.

queued -> running -> promoted | rejected | failed; a run that finds too little data
ends as not_started. A run record is plain data so it can live in a JSON status file.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any


class RunState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    FAILED = "failed"
    NOT_STARTED = "not_started"

    @property
    def finished(self) -> bool:
        return self not in (RunState.QUEUED, RunState.RUNNING)


@dataclass
class RunRecord:
    """One run of one project; ``progress`` holds epoch, loss and timing while it runs."""

    project: str
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
    state: RunState = RunState.QUEUED
    reason: str = ""
    queued_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # candidate / served holdout scores, images
    version: str | None = None  # set when promoted

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["state"] = RunState(known.get("state", "queued"))
        return cls(**known)


def start(run: RunRecord) -> RunRecord:
    """queued -> running: the worker picked the run up."""
    run.state, run.started_at = RunState.RUNNING, time.time()
    return run


def _finish(run: RunRecord, state: RunState, reason: str) -> RunRecord:
    run.state, run.reason, run.finished_at = state, reason, time.time()
    return run


def promote(run: RunRecord, version: str, reason: str) -> RunRecord:
    """running -> promoted: the candidate serves from now on as ``version``."""
    run.version = version
    return _finish(run, RunState.PROMOTED, reason)


def reject(run: RunRecord, reason: str) -> RunRecord:
    """running -> rejected: the served model scored better; it stays."""
    return _finish(run, RunState.REJECTED, reason)


def fail(run: RunRecord, reason: str) -> RunRecord:
    """any -> failed: an error, a timeout, or a worker that died mid-run."""
    return _finish(run, RunState.FAILED, reason)


def not_started(run: RunRecord, reason: str) -> RunRecord:
    """running -> not_started: too little labeled data; not an error."""
    return _finish(run, RunState.NOT_STARTED, reason)
