"""Running one training of a project the way production does (queue, child process, registry), and waiting."""

from __future__ import annotations

import time
from typing import Any


def wait_finished(trainer: Any, project: str, timeout: float = 900) -> dict:
    """Poll the trainer's status (what /training/status serves) until no run is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = trainer.status(project)
        if status["state"] == "idle" and status["last_run"]:
            return status
        time.sleep(1)
    raise AssertionError(f"training did not finish in {timeout} s: {trainer.status(project)}")


def train_once(trainer: Any, project: str, timeout: float = 900) -> tuple[dict, dict, float]:
    """"Start training" for ``project``, then (status, its finished run, seconds the whole run took)."""
    started = time.monotonic()
    assert trainer.handle("START_TRAINING", project)["status"] == "queued"
    status = wait_finished(trainer, project, timeout)
    return status, status["last_run"], time.monotonic() - started
