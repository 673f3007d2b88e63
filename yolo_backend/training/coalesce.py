"""One run per project at a time; triggers during a run fold into exactly one follow-up.

The decision is shared by every web worker and training worker through two files
in the project's folder, so it holds across gunicorn workers, processes and machines
sharing ``MODEL_DIR``:

- ``control.json`` (changed under ``control.lock``): whether a run is scheduled,
  whether a follow-up is wanted, how many annotations changed since the last start;
- ``run.lock``: held by the process executing the project's run for its whole life.
  The kernel drops it when that process dies (even ``kill -9``), so a scheduled run
  whose lock is free and whose job is gone is known to be dead and is replaced.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Literal

from ..core.durable import is_locked, locked, read_json, write_json
from ..core.registry import project_dir

Decision = Literal["queued", "folded", "counted"]
JobAlive = Callable[[dict[str, Any]], bool]  # runner's view: is this queued job still going to run?


class Coalescer:
    """The scheduling state of one project."""

    def __init__(self, model_dir: Path, project: str) -> None:
        folder = project_dir(model_dir, project)
        self.project = str(project)
        self.path = folder / "control.json"
        self._lock = folder / "control.lock"
        self.run_lock = folder / "run.lock"

    def read(self) -> dict[str, Any]:
        return read_json(self.path, {"scheduled": False, "running": False, "follow_up": False, "changes": 0,
                                     "job": None})

    def request(self, start: bool, every_n: int, submit: Callable[[], dict[str, Any]],
                job_alive: JobAlive, count: int = 1) -> Decision:
        """A trigger: ``start`` (button) or ``count`` changed annotations; ``submit`` queues a job.

        1. count the changes; stop there unless it is a start or the count reached ``every_n``;
        2. if a live run is scheduled, ask for one follow-up and stop;
        3. otherwise mark the project scheduled and submit a job (under the lock, so two
           workers receiving triggers at once cannot both submit).
        """
        with locked(self._lock):
            control = self.read()
            if not start:
                control["changes"] = int(control.get("changes", 0)) + count  # a bulk event counts them all
                if every_n <= 0 or control["changes"] < every_n:
                    write_json(self.path, control)
                    return "counted"
            if control["scheduled"] and self._alive(control, job_alive):
                if not (start and control.get("follow_up")):  # a repeated START changes nothing: no write
                    control["follow_up"] = True
                    write_json(self.path, control)
                return "folded"
            # A worker that starts at once waits for this lock in begin(), so it sees the job recorded.
            try:
                job = submit()
            except Exception:  # queue full or unreachable: nothing is scheduled, the changes stay counted
                write_json(self.path, control)
                raise
            control.update(scheduled=True, running=False, follow_up=False, changes=0, job=job,
                           scheduled_at=time.time())
            write_json(self.path, control)
            return "queued"

    def _alive(self, control: dict[str, Any], job_alive: JobAlive) -> bool:
        if is_locked(self.run_lock):
            return True
        if control.get("running"):
            return False  # it started, and its lock is gone: the worker died
        return bool(control.get("job")) and job_alive(control["job"])

    def begin(self) -> None:
        """The worker holds ``run_lock`` and starts a run now; changes counted so far are in it."""
        with locked(self._lock):
            control = self.read()
            control.update(scheduled=True, running=True, changes=0, pid=os.getpid(), started_at=time.time())
            write_json(self.path, control)

    def end(self) -> bool:
        """A run finished: True when a follow-up was asked for (and is now taken), else unschedule."""
        with locked(self._lock):
            control = self.read()
            again = bool(control.get("follow_up"))
            control.update(follow_up=False, running=False, scheduled=again)
            write_json(self.path, control)
            return again

    def clear_dead_run(self, job_alive: JobAlive) -> bool:
        """True (and unscheduled) when a run is scheduled but nothing executes or will execute it."""
        # Without the lock first (the file is replaced atomically): the usual answer, "no" or "alive", takes
        # no lock, and a project that was never scheduled gets no folder.
        control = self.read()
        if not control.get("scheduled") or self._alive(control, job_alive):
            return False
        with locked(self._lock):
            control = self.read()
            if not control.get("scheduled") or self._alive(control, job_alive):
                return False
            control.update(scheduled=False, running=False, follow_up=False)
            write_json(self.path, control)
            return True
