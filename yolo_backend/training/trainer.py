"""The trainer ``serving.backend.YOLOBackend.fit`` hands events to: admits, counts, coalesces, submits; never trains.

Everything here answers within milliseconds (a cached or 0.5 s Label Studio lookup, a file
lock, a small JSON file, a process start or a Redis call with short timeouts), so the
webhook always answers in under 1 s. A trigger that may not start a run (a project Label
Studio does not know, a full queue) is answered ``refused`` with the reason and leaves
nothing behind in MODEL_DIR.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..config import Settings
from ..core import state
from ..core.durable import read_json
from ..core.registry import Registry, RegistryReader, project_dir
from ..core.state import RunRecord
from ..core.status import StatusBook
from ..errors import BadRequest
from ..logs import RefusalLog
from .admission import KnownProjects, Refusal
from .coalesce import Coalescer
from .collect import LABEL_STUDIO
from .run_queue import QueueFull
from .runner import Runner, make_runner

log = logging.getLogger("yolo_backend.training")

START = "START_TRAINING"
# Label Studio 1.23's events that change a project's annotations (docs/training.md, "Events Label
# Studio sends"). A delete is ANNOTATIONS_DELETED, also for one; TASKS_CREATED is an import, which
# may carry annotations. ``serving.backend.changed_annotations`` counts each event's annotations.
CHANGES = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED", "TASKS_CREATED")
DIED = "the training worker stopped during the run (killed or restarted); the next trigger starts a new run"


class ProjectTrainer:
    """Per-project training control for one service; all state lives in MODEL_DIR."""

    def __init__(self, settings: Settings, runner: Runner | None = None, source: str = LABEL_STUDIO,
                 projects: KnownProjects | None = None) -> None:
        self.settings = settings
        self.model_dir: Path = settings.model_dir_path
        self.runner = runner or make_runner(settings, source)
        self.lookup = RegistryReader(self.model_dir)  # for ModelStore.use_project_models
        # Only Label Studio's projects may train; an export file (``file:`` source, tests and tools) is its own truth.
        self.projects = projects or (KnownProjects(settings) if source == LABEL_STUDIO else None)
        self.refusals = RefusalLog(log)

    def handle(self, event: str, project_id: str, changes: int = 1) -> dict[str, Any]:
        """START_TRAINING queues a run; an annotation event counts its ``changes`` towards TRAIN_EVERY_N."""
        if event != START and event not in CHANGES:
            return {"status": "ignored", "reason": f"{event} does not change training data"}
        if event != START and changes < 1:  # e.g. an import of tasks without annotations
            return {"status": "ignored", "reason": f"this {event} carries no annotations"}
        try:
            project_dir(self.model_dir, project_id)  # a path-like id is a bad request, before anything is asked
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        refusal = self.projects.refusal(project_id) if self.projects else None
        if refusal is not None:  # nothing is written for a project Label Studio does not know
            return self._refuse(project_id, refusal)
        coalescer = Coalescer(self.model_dir, project_id)
        self._close_dead_run(project_id, coalescer)
        queued: list[RunRecord] = []

        def submit() -> dict[str, Any]:
            queued.append(RunRecord(project_id))
            job = self.runner.submit(project_id, queued[0].run_id)
            # The job cannot begin before this is saved: it waits for the control lock request() holds.
            StatusBook(self.model_dir, project_id).save(queued[0])
            return job

        try:
            decision = coalescer.request(event == START, self.settings.train_every_n, submit, self.runner.alive,
                                         count=changes)
        except QueueFull as exc:  # refused: no run is recorded
            return self._refuse(project_id, Refusal("queue_full", str(exc)))
        except Exception as exc:  # Redis down, no process slots...: answer, say why, and show it in the status
            log.error("project %s: could not queue a training run: %s", project_id, exc)
            for run in queued:
                StatusBook(self.model_dir, project_id).save(state.fail(run, f"could not queue the run: {exc}"))
            return {"status": "failed", "project": project_id, "reason": f"could not queue the run: {exc}"}
        answer: dict[str, Any] = {"status": decision, "project": project_id, "runner": self.runner.name}
        if queued:
            answer["run_id"] = queued[0].run_id
            log.info("project %s: training run %s queued (%s)", project_id, queued[0].run_id, event)
        if decision == "counted":
            answer.update(changes=coalescer.read().get("changes", 0), train_every_n=self.settings.train_every_n)
        return answer

    def _refuse(self, project_id: str, refusal: Refusal) -> dict[str, Any]:
        """The answer to a trigger that starts nothing; logged once per reason and project, not per request."""
        self.refusals.refused(refusal.kind, project_id, f"project {project_id}: training refused: {refusal.reason}")
        return {"status": "refused", "project": project_id, "reason": refusal.reason}

    def _close_dead_run(self, project_id: str, coalescer: Coalescer) -> None:
        """A run recorded as queued/running whose worker is gone is marked failed, with the reason."""
        if not coalescer.clear_dead_run(self.runner.alive):
            return
        book = StatusBook(self.model_dir, project_id)
        current = book.current()
        if current is not None and not current.state.finished:
            book.save(state.fail(current, DIED))

    def status(self, project_id: str) -> dict[str, Any]:
        """idle / queued / running (epoch, elapsed, remaining, loss) / last run and served version."""
        coalescer = Coalescer(self.model_dir, project_id)
        self._close_dead_run(project_id, coalescer)
        book = StatusBook(self.model_dir, project_id)
        current, last = book.current(), book.last()
        control = coalescer.read()
        served = Registry(self.model_dir, project_id).served()
        return {
            "project": project_id,
            # Between two runs of a follow-up nothing is current, yet the project is scheduled.
            "state": current.state.value if current else ("queued" if control.get("scheduled") else "idle"),
            "run": current.to_json() if current else None,
            "last_run": last.to_json() if last else None,
            "follow_up_pending": bool(control.get("follow_up")),
            "changes_since_last_run": int(control.get("changes", 0)),
            "train_every_n": self.settings.train_every_n,
            "served_version": served["version"] if served else None,
            "runner": self.runner.name,
        }

    def history(self, project_id: str) -> dict[str, Any]:
        """For ``/versions?project=``: version names (newest last), which one serves, the scores, thresholds
        and promotion decision of each, and the last runs' decisions (rejected ones included), each with its
        F1 gain and the gain's bootstrap interval (``gain``: how sure the decision was)."""
        data = Registry(self.model_dir, project_id).load()
        runs = StatusBook(self.model_dir, project_id).read().get("history") or []
        decisions = [{"run_id": r["run_id"], "state": r["state"], "reason": r["reason"], "version": r.get("version"),
                      "candidate": (r.get("metrics") or {}).get("candidate"),
                      "served": (r.get("metrics") or {}).get("served"),
                      "gain": (r.get("metrics") or {}).get("gain")} for r in runs]
        return {"versions": [v["version"] for v in data["versions"]], "project": project_id,
                "served": data["served"], "details": data["versions"], "runs": decisions}

    def known_versions(self) -> list[str]:
        """Every promoted version of every project in MODEL_DIR: what /versions lists."""
        found: list[str] = []
        for registry in sorted((self.model_dir / "projects").glob("*/registry.json")):
            found += [v["version"] for v in (read_json(registry, {}) or {}).get("versions") or []]
        return found

    def rollback(self, project_id: str, version: str) -> dict[str, Any]:
        """Serve an earlier promoted version; every worker notices on its next request."""
        if not project_dir(self.model_dir, project_id).is_dir():  # a made-up id creates no folder
            raise KeyError(f"project {project_id} has no trained versions")
        entry = Registry(self.model_dir, project_id).serve(version)
        log.info("project %s: now serving %s (rollback)", project_id, version)
        return {"project": project_id, "served": entry["version"], "metrics": entry.get("metrics")}


def build_trainer(settings: Settings, source: str = LABEL_STUDIO) -> ProjectTrainer:
    """The trainer for this service: an RQ queue when REDIS_URL is set, local child processes otherwise."""
    return ProjectTrainer(settings, make_runner(settings, source), source)
