"""Where a project's runs stand, in ``MODEL_DIR/projects/<id>/status.json``.

Written by whichever process moves a run (the web side queues it, the worker runs and
finishes it), always under the project's status lock and atomically, so any web
worker can answer ``/training/status`` and ``/metrics`` from the file alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .durable import locked, read_json, write_json
from .registry import project_dir
from .state import RunRecord

HISTORY = 20  # finished runs kept per project


class StatusBook:
    """The current run and the last finished ones of one project."""

    def __init__(self, model_dir: Path, project: str) -> None:
        folder = project_dir(model_dir, project)
        self.project = str(project)
        self.path = folder / "status.json"
        self._lock = folder / "status.lock"

    def read(self) -> dict[str, Any]:
        return read_json(self.path, {"project": self.project, "current": None, "history": []})

    def current(self) -> RunRecord | None:
        data = self.read().get("current")
        return RunRecord.from_json(data) if data else None

    def last(self) -> RunRecord | None:
        history = self.read().get("history") or []
        return RunRecord.from_json(history[-1]) if history else None

    def save(self, run: RunRecord) -> None:
        """Record ``run``: as the current run while it is queued or running, in the history once finished."""
        with locked(self._lock):
            data = self.read()
            current = data.get("current")
            if run.state.finished:
                if current and current.get("run_id") == run.run_id:
                    data["current"] = None
                # a run is listed once: saved again (the watchdog adds what retention removed), it is replaced
                earlier = [r for r in data.get("history") or [] if r.get("run_id") != run.run_id]
                data["history"] = [*earlier, run.to_json()][-HISTORY:]
            else:
                data["current"] = run.to_json()
            write_json(self.path, data)

