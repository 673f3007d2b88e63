"""Every way Label Studio changes annotations reaches the backend's change count, exactly.

Creates, a single delete, the Data Manager's "Delete annotations" on several tasks and an
import of tasks carrying annotations, each done through Label Studio's API; after each the
backend's ``/training/status`` must show exactly the annotations changed so far. The backend
runs with ``TRAIN_EVERY_N=0``, so nothing trains. Label Studio (no Redis) sends its webhooks
inside the API request, in order: a later event that counts proves an earlier one that must
not count did not.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.e2e import projects
from tests.support.backend_server import BackendServer
from tests.support.label_studio import LabelStudioServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RESULT = [{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 64,
           "original_height": 64, "image_rotation": 0,
           "value": {"x": 10, "y": 10, "width": 30, "height": 30, "rotation": 0, "rectanglelabels": ["square"]}}]


def changes(server: BackendServer, project: int) -> int:
    answer = requests.get(f"{server.url}/training/status", params={"project": project}, timeout=5)
    answer.raise_for_status()
    return int(answer.json()["changes_since_last_run"])


def expect_changes(server: BackendServer, project: int, expected: int, after: str, timeout: float = 30.0) -> None:
    """Poll until the backend counts exactly ``expected`` changes; a count past it fails at once."""
    deadline = time.monotonic() + timeout
    seen = changes(server, project)
    while seen != expected:
        if seen > expected or time.monotonic() > deadline:
            raise AssertionError(f"after {after}: the backend counts {seen} changed annotations, expected {expected}")
        time.sleep(0.2)
        seen = changes(server, project)


def import_tasks(ls: LabelStudioServer, project: int, tasks: list[dict[str, Any]]) -> list[int]:
    """``POST /api/projects/<id>/import`` of task JSON (annotations included); the new task ids."""
    answer = ls.api("POST", f"/api/projects/{project}/import", json=tasks, params={"return_task_ids": "true"})
    answer.raise_for_status()
    return [int(t) for t in answer.json()["task_ids"]]


def image_task(name: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    # never opened, so the backend never fetches it
    return {"data": {"image": f"/data/local-files/?d=events/{name}.jpg"}, "annotations": annotations or []}


def test_annotation_events_count_exactly_what_changed(label_studio: LabelStudioServer, start_extra_backend) -> None:
    backend = start_extra_backend(TRAIN_EVERY_N="0")  # count only: no change may start a run
    client = label_studio.client()
    project = projects.create_project(label_studio, "e2e: events")
    projects.connect_backend(label_studio, project, backend.url, title="yolo-events")  # creates the webhook

    # an import without annotations sends TASKS_CREATED with none: nothing to count
    tasks = import_tasks(label_studio, project, [image_task(f"plain-{i}") for i in range(5)])
    assert changes(backend, project) == 0

    # ANNOTATION_CREATED, one per annotation: 5 tasks, the second one annotated twice
    created = [client.annotations.create(id=task, result=RESULT, project=project) for task in tasks]
    created.append(client.annotations.create(id=tasks[1], result=RESULT, project=project))
    expect_changes(backend, project, 6, "6 annotations created")

    # a single delete: ANNOTATIONS_DELETED with a list of one id
    client.annotations.delete(id=created[0].id)
    expect_changes(backend, project, 7, "one annotation deleted")

    # Data Manager "Delete annotations" on 3 tasks holding 4 annotations: one ANNOTATIONS_DELETED with 4 ids
    client.actions.create(id="delete_tasks_annotations", project=project,
                          selected_items={"all": False, "included": tasks[1:4]})
    expect_changes(backend, project, 11, "deleting the annotations of 3 tasks (4 annotations)")

    # the same action on tasks that hold none deletes nothing and counts nothing (Label Studio sends
    # no event at all then); the import below counts exactly its own, so a count here would show too
    client.actions.create(id="delete_tasks_annotations", project=project,
                          selected_items={"all": False, "included": tasks[1:3]})
    assert changes(backend, project) == 11  # webhooks are sent inside the action's request

    # an import of tasks carrying 1 + 2 annotations and one skipped: one TASKS_CREATED (no
    # ANNOTATIONS_CREATED), each task with its total_annotations; the skipped one is no training data
    imported = [image_task("imported-1", [{"result": RESULT}]),
                image_task("imported-2", [{"result": RESULT}, {"result": RESULT}]),
                image_task("imported-skipped", [{"result": [], "was_cancelled": True}])]
    import_tasks(label_studio, project, imported)
    expect_changes(backend, project, 14, "importing 3 tasks carrying 3 annotations and a skipped one")
