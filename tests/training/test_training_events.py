"""Every event Label Studio 1.23.2 sends to the webhook counts the annotations it changed, no more, no less.

The bodies are the ones Label Studio really sends (measured against 1.23.2, see the table
"Events Label Studio sends" in docs/training.md): single events carry one ``annotation``,
bulk events a list. They go through the real Flask app on a socket; runs are only
recorded (``RecordingRunner``), since these tests are about counting, not about runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.live_app import LiveApp

PROJECT = 7
RESULT = [{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 100,
           "original_height": 100, "value": {"x": 1, "y": 1, "width": 10, "height": 10, "rotation": 0,
                                             "rectanglelabels": ["square"]}}]


def project() -> dict[str, Any]:
    """``ProjectWebhookSerializer``: every model field plus counters; the id is what matters."""
    return {"id": PROJECT, "title": "shapes", "label_config": "<View/>", "task_number": 9,
            "total_annotations_number": 4}


def task(task_id: int, annotations: int = 0, cancelled: int = 0) -> dict[str, Any]:
    """``TaskWebhookSerializer``: the task's own fields, with its counters; no annotations inside."""
    return {"id": task_id, "project": PROJECT, "data": {"image": f"/data/upload/{PROJECT}/{task_id}.jpg"},
            "is_labeled": annotations > 0, "total_annotations": annotations, "cancelled_annotations": cancelled,
            "total_predictions": 0, "inner_id": task_id}


def annotation(annotation_id: int, task_id: int) -> dict[str, Any]:
    """``AnnotationWebhookSerializer``: the annotation's own fields, its project as a plain id."""
    return {"id": annotation_id, "project": PROJECT, "task": task_id, "result": RESULT, "was_cancelled": False,
            "ground_truth": False, "completed_by": 1}


# (action, body without the action, annotations it changed), in the order a project could see them
REAL_EVENTS: list[tuple[str, dict[str, Any], int]] = [
    ("ANNOTATION_CREATED", {"annotation": annotation(1, 101), "task": task(101, 1), "project": project()}, 1),
    ("ANNOTATION_UPDATED", {"annotation": annotation(1, 101), "task": task(101, 1), "project": project()}, 1),
    # "Predictions to annotations" (Data Manager): a list under the singular key, tasks as a list too
    ("ANNOTATIONS_CREATED", {"annotation": [annotation(i, 100 + i) for i in (2, 3, 4)],
                             "task": [task(100 + i) for i in (2, 3, 4)], "project": project()}, 3),
    # a single delete (the trash button, DELETE /api/annotations/<id>): a list of one id
    ("ANNOTATIONS_DELETED", {"annotations": [{"id": 1}], "project": project()}, 1),
    # "Delete annotations" (Data Manager) on selected tasks: every deleted annotation's id
    ("ANNOTATIONS_DELETED", {"annotations": [{"id": 2}, {"id": 3}, {"id": 4}], "project": project()}, 3),
    # an import of tasks carrying annotations: only the tasks, each with how many (skipped ones apart)
    ("TASKS_CREATED", {"tasks": [task(110, 1), task(111, 2), task(112, 0, cancelled=1)], "project": project()}, 3),
]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LiveApp]:
    live = LiveApp(tmp_path, train_every_n=100, admin_open=True)
    yield live
    live.close()


def send(app: LiveApp, action: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(f"{app.url}/webhook", json={"action": action, **body}, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def changes(app: LiveApp) -> int:
    answer = requests.get(f"{app.url}/training/status", params={"project": PROJECT}, timeout=5)
    answer.raise_for_status()
    return int(answer.json()["changes_since_last_run"])


def test_every_event_label_studio_sends_counts_the_annotations_it_carries(app: LiveApp) -> None:
    expected = 0
    for action, body, changed in REAL_EVENTS:
        answer = send(app, action, body)
        expected += changed
        assert answer["status"] == "counted", (action, answer)
        assert answer["changes"] == changes(app) == expected, f"{action} carrying {changed} annotation(s)"
    assert app.runner.submitted == []


def test_made_up_and_unrelated_events_are_ignored_with_the_reason(app: LiveApp) -> None:
    # ANNOTATION_DELETED is no Label Studio event (a delete is ANNOTATIONS_DELETED, even for one)
    for action in ("ANNOTATION_DELETED", "ANNOTATIONS_UPDATED"):
        answer = send(app, action, {"annotation": annotation(1, 101), "project": project()})
        assert answer["status"] == "ignored" and action in answer["reason"], answer
    # real events that change no annotation the backend can count
    unrelated = [("PROJECT_UPDATED", {"project": project()}),
                 ("TASKS_CREATED", {"tasks": [task(120), task(121)], "project": project()}),  # plain upload
                 ("TASKS_DELETED", {"tasks": [{"id": 120}], "project": project()}),
                 ("LABEL_LINK_CREATED", {"label_link": [{"id": 1, "project": PROJECT}], "project": project()})]
    for action, body in unrelated:
        answer = send(app, action, body)
        assert answer["status"] == "ignored" and answer["reason"], (action, answer)
    assert changes(app) == 0 and app.runner.submitted == []


def test_bulk_deletes_reaching_train_every_n_queue_exactly_one_run(tmp_path: Path) -> None:
    app = LiveApp(tmp_path, train_every_n=5, admin_open=True)
    try:
        three = {"annotations": [{"id": i} for i in (1, 2, 3)], "project": project()}
        assert send(app, "ANNOTATIONS_DELETED", three)["status"] == "counted"  # 3 of 5
        assert app.runner.submitted == []
        queued = send(app, "ANNOTATIONS_DELETED", {**three, "annotations": [{"id": i} for i in (4, 5, 6)]})
        assert queued["status"] == "queued" and len(app.runner.submitted) == 1  # 6 >= 5: one run, not two
        assert changes(app) == 0  # the run takes every change counted so far
        # while that run is scheduled, 3 more stay counted (3 < 5) and queue nothing
        assert send(app, "ANNOTATIONS_DELETED", three)["status"] == "counted"
        assert changes(app) == 3 and len(app.runner.submitted) == 1
    finally:
        app.close()
