"""A simulated annotator labeling a project through a real Label Studio connected to the real service.

Per task, as a person does it: pick the next task (the project's order, or the Data Manager's
order by *Prediction score* ascending after *Retrieve predictions*), open it (``GET
/api/tasks/<id>``: Label Studio calls ``/predict`` for a task without a prediction), correct the
newest pre-label to the truth, submit (Label Studio's webhook reaches ``/webhook``, which counts
and trains by ``TRAIN_EVERY_N``). The edits each correction needs are counted by
``tests/support/edit_count.py``. Used by ``scripts/bench_loop.py`` and ``tests/e2e/test_loop.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.e2e import projects
from tests.support.edit_count import Edits, count_edits
from tests.support.label_studio import LabelStudioServer
from tests.support.loop_project import LABEL_CONFIG, LoopImage, boxes_of, truth_result


@dataclass(frozen=True)
class Strategy:
    """How the project is labeled: with a model or not, retrained on submit or not, in which order."""

    name: str
    model: bool
    retrain: bool
    by_uncertainty: bool = False


STRATEGIES = {
    "draw": Strategy("draw everything", model=False, retrain=False),
    "fixed": Strategy("fixed base", model=True, retrain=False),
    "loop": Strategy("our loop", model=True, retrain=True),
    "loop-uncertainty": Strategy("our loop, uncertainty order", model=True, retrain=True, by_uncertainty=True),
}


@dataclass
class Opened:
    """One labeled task: its pre-label's version, what the service served around the open, the edits."""

    step: int
    task: int
    image: str
    version: str | None  # model_version of the pre-label shown (None: no pre-label)
    serving: tuple[str | None, str | None]  # the service's version just before and just after the open
    edits: Edits
    at: float  # time.time() of the open


@dataclass
class LoopResult:
    strategy: Strategy
    opened: list[Opened] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run_id -> last seen record, + labeled_at_seen
    project: int = 0


class Service:
    """The backend's own routes the annotator's script watches (never used to label)."""

    def __init__(self, url: str, project: int) -> None:
        self.url, self.project = url, project

    def get(self, route: str) -> dict[str, Any]:
        answer = requests.get(f"{self.url}{route}", params={"project": self.project}, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def version(self) -> str:
        return str(self.get("/versions")["model_version"])


def label_project(ls: LabelStudioServer, images: list[LoopImage], strategy: Strategy, backend_url: str | None,
                  title: str, after_submit: Callable[[int, Edits, Service | None], None] | None = None
                  ) -> LoopResult:
    """Label every image once under ``strategy``; ``after_submit(labeled, edits, service)`` paces the annotator."""
    project = int(ls.client().projects.create(title=title, label_config=LABEL_CONFIG).id)
    projects.import_local_tasks(ls, project, [i.path for i in images])
    by_name = {i.path.name: i for i in images}
    image_of = {int(t["id"]): by_name[t["data"]["image"].rsplit("/", 1)[-1]] for t in _tasks(ls, project)}
    order = sorted(image_of, key=lambda t: images.index(image_of[t]))  # the project's order: the images' order
    service = None
    if strategy.model:
        assert backend_url, f"{strategy.name} needs the service"
        projects.connect_backend(ls, project, backend_url, title=title)
        service = Service(backend_url, project)
    result = LoopResult(strategy, project=project)
    sorted_for: str | None = None
    for step in range(len(order)):
        if strategy.by_uncertainty and service is not None:
            serving = service.version()
            if serving != sorted_for:  # a new version: Retrieve predictions again, then sort
                _retrieve_predictions(ls, project, order)
                sorted_for = serving
            order = _by_prediction_score(ls, project, order)
        task = order.pop(0)
        result.opened.append(_label_one(ls, project, task, image_of[task], step, service))
        if service is not None and strategy.retrain:
            _note_runs(service, result, step + 1)
        if after_submit is not None:
            after_submit(step + 1, result.opened[-1].edits, service)
    if service is not None and strategy.retrain:
        _note_runs(service, result, len(images))
    return result


def _label_one(ls: LabelStudioServer, project: int, task: int, image: LoopImage, step: int,
               service: Service | None) -> Opened:
    """Open, correct, submit; the edits are counted against the newest pre-label the task shows."""
    before = service.version() if service else None
    at = time.time()
    opened = projects.open_task(ls, task)
    after = service.version() if service else None
    predictions = sorted(opened.get("predictions") or [], key=lambda p: p.get("created_at") or "")
    shown = predictions[-1] if predictions else None
    boxes = boxes_of(shown["result"], image.width, image.height) if shown else []
    edits = count_edits(boxes, list(image.truth))
    ls.client().annotations.create(id=task, result=truth_result(image), project=project)
    return Opened(step, task, image.path.name, shown.get("model_version") if shown else None, (before, after),
                  edits, at)


def _note_runs(service: Service, result: LoopResult, labeled: int) -> None:
    """Remember every run /training/status shows, with how many tasks were labeled when it was first seen."""
    status = service.get("/training/status")
    for run in (status.get("run"), status.get("last_run")):
        if run:
            seen = result.runs.get(run["run_id"], {}).get("labeled_at_seen", labeled)
            result.runs[run["run_id"]] = {**run, "labeled_at_seen": seen}


def _tasks(ls: LabelStudioServer, project: int, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"project": project, "page_size": 10000, "fields": "all"}
    if query is not None:
        params["query"] = json.dumps(query)
    answer = ls.api("GET", "/api/tasks", params=params)
    answer.raise_for_status()
    return answer.json()["tasks"]


def _retrieve_predictions(ls: LabelStudioServer, project: int, remaining: list[int]) -> None:
    """The Data Manager action *Retrieve predictions* on the tasks still to label."""
    ls.client().actions.create(id="retrieve_tasks_predictions", project=project,
                               selected_items={"all": False, "included": remaining})


def _by_prediction_score(ls: LabelStudioServer, project: int, remaining: list[int]) -> list[int]:
    """The remaining tasks as the Data Manager lists them ordered by *Prediction score*, ascending."""
    ordered = [int(t["id"]) for t in _tasks(ls, project, {"ordering": ["tasks:predictions_score"]})]
    left = set(remaining)
    return [t for t in ordered if t in left]


def wait_for_run(service: Service, timeout: float = 600.0) -> dict[str, Any]:
    """Block until a run was queued by the last submissions and has finished; its record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = service.get("/training/status")
        last = status.get("last_run")
        if status["state"] not in ("queued", "running") and last and last["state"] not in ("queued", "running"):
            return last
        time.sleep(1.0)
    raise AssertionError(f"no finished run within {timeout:.0f} s: {service.get('/training/status')}")
