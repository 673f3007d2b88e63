"""``/predict`` inside PREDICT_BUDGET_SECONDS, whatever Label Studio sends.

Label Studio 1.23's *Retrieve predictions* sends every selected task without a prediction of the
current version in ONE ``/predict`` and waits 100 s; a late or failed answer saves nothing
(docs/bulk.md). So tasks are predicted in growing slices while the next slice is
expected to fit the budget; the rest go to a bulk job and are answered ``[]``: an empty list of
predictions for that task, which Label Studio stores nothing for (no empty prediction that would
stop the task from being predicted when it is opened). A task whose image fails is answered ``[]``
too, for the same reason. A task a running job holds is answered
``[]`` too, and not queued again; one opened in Label Studio is taken from its job and answered here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import BadRequest
from ..serving.backend import project_id
from .jobs import BulkJobs

log = logging.getLogger(__name__)

FIRST_SLICE, LARGEST_SLICE = 8, 64
MARGIN = 1.25  # the next slice must fit with this much to spare
STORED_WAIT_S = 5.0  # an opened task a chunk is storing right now: wait this long for it to land
NOTHING: list[dict[str, Any]] = []  # "no prediction for this task": Label Studio stores nothing


def predict(backend: Any, jobs: BulkJobs | None, tasks: list[dict[str, Any]], project: Any, label_config: str,
            context: dict[str, Any] | None = None) -> list[Any]:
    """One answer per task, in order: a prediction, or ``[]`` for a task a bulk job stores."""
    pid = _project(project)
    ids = [_task_id(task) for task in tasks]
    no_jobs = jobs is None or pid is None or None in ids
    if no_jobs and len(tasks) > 1:  # every task in this request
        return _each(backend, tasks, project, label_config)
    if no_jobs or context:  # one task, no job can hold it: as before
        return backend.predict(tasks, context=context, project=project, label_config_xml=label_config)
    if len(tasks) == 1:
        return _opened(backend, jobs, tasks[0], pid, project, label_config)
    held = jobs.ledger.held(pid, ids)  # type: ignore[arg-type]
    answers: list[Any] = [NOTHING if task_id in held else None for task_id in ids]
    todo = [i for i, answer in enumerate(answers) if answer is None]
    budget = jobs.settings.predict_budget_seconds if jobs.can_store else 0.0
    started, done, size = time.monotonic(), 0, FIRST_SLICE
    while done < len(todo):
        elapsed = time.monotonic() - started
        if budget and done and elapsed + elapsed / done * size * MARGIN > budget:
            break
        part = todo[done:done + size] if budget else todo
        for i, answer in zip(part, _each(backend, [tasks[i] for i in part], project, label_config)):
            answers[i] = answer
        done += len(part)
        size = min(size * 2, LARGEST_SLICE)
    rest = [tasks[i] for i in todo[done:]]
    if rest:
        version = backend.current_version(pid) or "unknown"
        try:
            job = jobs.start(pid, version, label_config, rest, origin="retrieve")
        except Exception:  # MODEL_DIR unwritable...: these tasks stay unpredicted, so opening them predicts them
            log.exception("project %s: could not start a bulk job for %d tasks; they are predicted when opened",
                          pid, len(rest))
            job = None
        log.info("project %s: /predict answered %d of %d tasks in %.1f s; %d to bulk job %s (%d held by running "
                 "jobs)", pid, done, len(todo), time.monotonic() - started, len(rest), job and job.id, len(held))
        for i in todo[done:]:
            answers[i] = NOTHING
    return answers


def _each(backend: Any, tasks: list[dict[str, Any]], project: Any, label_config: str) -> list[Any]:
    """Predictions of many tasks; ``[]`` for one whose media failed and left it no region (logged with the reason),
    so Label Studio stores nothing for it and opening it tries again (and shows why), rather than an empty
    prediction that would hide it. A task with another image read keeps that image's regions."""
    failed: dict[int, str] = {}
    answers = backend.predict(tasks, project=project, label_config_xml=label_config, failed=failed)
    return [NOTHING if i in failed and not answer["result"] else answer for i, answer in enumerate(answers)]


def _opened(backend: Any, jobs: BulkJobs, task: dict[str, Any], pid: str, project: Any,
            label_config: str) -> list[Any]:
    """A task opened in Label Studio: ours to answer unless a chunk is storing it right now."""
    task_id = int(task["id"])
    if not jobs.ledger.held(pid, [task_id]):  # the usual case: a read, no write on every open
        return backend.predict([task], project=project, label_config_xml=label_config)
    if jobs.ledger.take_over(pid, task_id) == "claimed":
        until = time.monotonic() + STORED_WAIT_S
        while time.monotonic() < until and jobs.ledger.held(pid, [task_id]):
            time.sleep(0.1)  # the chunk stores within a batch's time; Label Studio then shows its prediction
        if jobs.ledger.held(pid, [task_id]) or jobs.ledger.task_state(pid, task_id) == "stored":
            return [NOTHING]
    return backend.predict([task], project=project, label_config_xml=label_config)


def project_key(project: Any) -> str:
    """The project id a job is filed under; a clear error for anything else."""
    key = _project(project)
    if key is None:
        raise BadRequest("'project' must be a Label Studio project id")
    return key


def _project(project: Any) -> str | None:
    """A Label Studio project id (digits) or None: a job is stored under it and listed by it."""
    text = project_id(project)
    return text if text and text.isdigit() else None


def _task_id(task: Any) -> int | None:
    value = task.get("id") if isinstance(task, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
