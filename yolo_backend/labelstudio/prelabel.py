"""Pre-label a whole project: predict every task lacking the current model version, store in chunks.

Label Studio's own "Retrieve predictions" sends every task in one ``/predict`` under a
100 s timeout and keeps nothing if it times out. Here each chunk is predicted and stored
before the next starts, so an interrupted run loses at most one chunk, and a second run
only does what is missing (tasks holding a prediction of the current version are skipped).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from ..progress import bar
from . import ls_client

log = logging.getLogger(__name__)


class Predictor(Protocol):
    """Where predictions come from: this process's model, or a running backend."""

    def version(self) -> str: ...

    def predict(self, task: dict[str, Any]) -> dict[str, Any]: ...


class InProcessPredictor:
    """``serving.backend.YOLOBackend`` in this process, with the project's label config."""

    def __init__(self, backend: Any, project: int, label_config: str) -> None:
        self.backend, self.project, self.label_config = backend, str(project), label_config

    def version(self) -> str:
        self.backend.store.wait(self.backend.settings.load_wait_seconds)
        return str(self.backend.setup(self.project, self.label_config)["model_version"])

    def predict(self, task: dict[str, Any]) -> dict[str, Any]:
        """One task per call: a failed image then raises with its reason instead of an empty result.

        Videos of any length: no /predict deadline here, progress logged every tenth of a video instead.
        """
        reported = [0]

        def frames_done(done: int, total: int) -> None:
            if done * 10 // total > reported[0] and total >= 200:
                reported[0] = done * 10 // total
                log.info("task %s: %d of %d frames tracked", task.get("id"), done, total)

        return self.backend.predict([task], project=self.project, label_config_xml=self.label_config,
                                    video_deadline=False, progress=frames_done)[0]


class BackendAnswerError(RuntimeError):
    """A backend answered with an error; ``summary`` (route and status) groups failures in the report."""

    def __init__(self, summary: str, message: str) -> None:
        super().__init__(f"{summary}: {message}")
        self.summary, self.message = summary, message


class BackendJob:
    """A running backend's bulk job (``POST /bulk/start``, ``GET /bulk/status``): the one bulk path, here
    followed from a terminal; the backend's own workers predict and store."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None, timeout: float = 600.0) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.auth = auth

    def _call(self, method: str, route: str, **kwargs: Any) -> dict[str, Any]:
        answer = self.session.request(method, f"{self.url}{route}", timeout=self.timeout, **kwargs)
        if answer.status_code != 200:
            try:
                reason = answer.json().get("message") or answer.text
            except ValueError:
                reason = answer.text
            raise BackendAnswerError(f"backend {route} answered {answer.status_code}", str(reason)[:300])
        return answer.json()

    def follow(self, project: int, outcome: Outcome, progress: bool | None = None, every: float = 1.0) -> Outcome:
        """Start the job, show its progress until it ends, and count it into ``outcome`` like an in-process run."""
        started = self._call("POST", "/bulk/start", json={"project": project})
        outcome.version = started["model_version"]
        outcome.total, outcome.skipped = started["tasks"], started["already_predicted"]
        if started["job"] is None:
            return outcome
        with bar(None, "predict", "task", total=outcome.total - outcome.skipped, show=progress) as progress_bar:
            while True:
                [job] = self._call("GET", "/bulk/status", params={"job": started["job"]})["jobs"]
                progress_bar.update(job["stored"] + job["opened"] + job["failed"] - progress_bar.n)
                if job["state"] != "running":
                    break
                time.sleep(every)  # the backend's workers do the work; this only reads their progress
        outcome.done = job["stored"] + job["opened"]  # opened in Label Studio meanwhile: predicted on open
        outcome.failed += [(f["task"], *_split_reason(f["reason"] or "")) for f in job["failures"]]
        outcome.failed += [(-1, "failed", "more failures: GET /bulk/status") for _ in range(
            max(0, job["failed"] - len(job["failures"])))]
        if job["state"] == "cancelled":
            outcome.failed.append((-1, "cancelled", f"bulk job {job['job']} was cancelled"))
        return outcome


def _split_reason(reason: str) -> tuple[str, str]:
    kind, _, detail = reason.partition(": ")
    return (f"predict: {kind}", detail) if detail else ("predict", reason)


@dataclass
class Outcome:
    """Counts of a run; ``failed`` keeps (task id, kind of failure, detail) for the summary."""

    version: str = ""
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[tuple[int, str, str]] = field(default_factory=list)

    def summary(self, top: int = 5) -> str:
        lines = [f"model version {self.version}: {self.done} done, {self.skipped} skipped "
                 f"(already predicted), {len(self.failed)} failed, of {self.total} tasks"]
        for kind, count in Counter(kind for _, kind, _ in self.failed).most_common(top):
            tid, detail = next((tid, detail) for tid, k, detail in self.failed if k == kind)
            lines.append(f"  {count} x {kind} (e.g. task {tid}: {detail})")
        return "\n".join(lines)


def prelabel(client: Any, project: int, predictor: Predictor, chunk_size: int = 50, workers: int = 2,
             model_version: str | None = None, progress: bool | None = None, outcome: Outcome | None = None) -> Outcome:
    """1. learn the version, 2. list tasks, 3. skip predicted ones, 4. predict + store chunk by chunk."""
    outcome = outcome if outcome is not None else Outcome()
    outcome.version = model_version or predictor.version()
    todo, outcome.total = unpredicted(client, project, outcome.version)
    outcome.skipped = outcome.total - len(todo)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prelabel") as pool, \
            bar(None, "predict", "task", total=len(todo), show=progress) as progress_bar:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            predictions = list(pool.map(lambda task: _predict(predictor, task, outcome), chunk))
            store(client, project, [p for p in predictions if p is not None], outcome)
            progress_bar.update(len(chunk))
    return outcome


def unpredicted(client: Any, project: int, version: str) -> tuple[list[dict[str, Any]], int]:
    """The project's tasks (``{"id", "data"}``) lacking a prediction of ``version``, and how many tasks it has:
    the resume point of ``prelabel`` here and of a bulk job started by ``yolo-ls prelabel --backend``."""
    tasks = list(ls_client.iter_tasks(client, project))
    have = ls_client.predicted_task_ids(client, project, version)
    todo = [task for task in tasks if task["id"] not in have]
    log.info("%d tasks, %d already predicted by %s, %d to do", len(tasks), len(tasks) - len(todo), version, len(todo))
    return todo, len(tasks)


def _predict(predictor: Predictor, task: dict[str, Any], outcome: Outcome) -> dict[str, Any] | None:
    """The prediction ready to store, or None with the reason recorded."""
    try:
        answer = predictor.predict(task)
        if not isinstance(answer, dict) or not isinstance(answer.get("result"), list):
            raise RuntimeError("the prediction has no result list")
    except Exception as exc:
        outcome.failed.append((task["id"], *_reason("predict", exc)))
        return None
    if answer.get("model_version") and answer["model_version"] != outcome.version:
        log.warning("task %s: backend labelled its prediction %r, stored as %r so reruns can skip it",
                    task["id"], answer["model_version"], outcome.version)
    return {"task": task["id"], "result": answer["result"], "score": answer.get("score"),
            "model_version": outcome.version}


def store(client: Any, project: int, predictions: list[dict[str, Any]], outcome: Outcome) -> None:
    """One request per chunk; if Label Studio refuses it, one by one to find the bad one (the bulk jobs' path too)."""
    try:
        ls_client.store_predictions(client, project, predictions)
        outcome.done += len(predictions)
        return
    except Exception as exc:
        if getattr(exc, "status_code", None) is None:
            raise  # Label Studio unreachable: stop; a rerun resumes (one by one would only time out 50 times)
        log.warning("storing a chunk of %d failed (%s); storing one by one", len(predictions),
                    ls_client.error_text(exc))
    for prediction in predictions:
        try:
            ls_client.store_prediction(client, prediction)
            outcome.done += 1
        except Exception as exc:
            outcome.failed.append((prediction["task"], *_reason("store", exc)))


def _reason(stage: str, exc: Exception) -> tuple[str, str]:
    """(kind, detail): failures of one kind are counted together, the detail shows one example."""
    status = getattr(exc, "status_code", None)  # an SDK ApiError: Label Studio refused
    kind = (getattr(exc, "summary", None) or (f"Label Studio answered {status}" if status else type(exc).__name__))
    detail = getattr(exc, "message", None) or (str(getattr(exc, "body", "")) if status else str(exc))
    return f"{stage}: {kind}", str(detail)[:200]
