"""Checks 1-3: connecting the backend, a prediction on opening a task, "Retrieve predictions" in bulk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import projects
from tests.support.backend_server import BackendServer
from tests.support.label_studio import LabelStudioServer
from tests.support.sample_images import Sample, matched, write_samples

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ORIENTATIONS = (1, 6, 3, 8)  # plain, and three EXIF tags (turned 90, 180, 270 degrees)


@pytest.fixture(scope="module")
def connected(label_studio: LabelStudioServer, backend: BackendServer, tmp_path_factory: pytest.TempPathFactory
              ) -> dict:
    """A project with uploaded and local-files tasks, some EXIF-rotated, and the backend connected."""
    project = projects.create_project(label_studio, "e2e: predictions on open")
    uploaded = write_samples(tmp_path_factory.mktemp("uploads"), 4, first_seed=100, orientations=ORIENTATIONS)
    local_dir = label_studio.document_root / f"project-{project}"
    local = write_samples(local_dir, 4, first_seed=200, orientations=ORIENTATIONS)
    projects.upload_images(label_studio, project, [s.path for s in uploaded])
    projects.sync_local_folder(label_studio, project, local_dir, expected=8)
    ml = projects.connect_backend(label_studio, project, backend.url, title="yolo-shapes")
    return {"project": project, "ml": ml, "samples": uploaded + local}


def test_1_connecting_shows_the_backend_model_version(label_studio: LabelStudioServer, backend: BackendServer,
                                                      connected: dict) -> None:
    client = label_studio.client()
    [ml] = client.ml.list(project=connected["project"])
    assert ml.id == connected["ml"].id
    assert ml.state == "CO", f"backend state {ml.state}: {ml.error_message}"  # CO = connected
    assert ml.model_version == backend.health()["model_version"]
    assert ml.model_version.startswith("shapes-")  # <checkpoint stem>-<hash>, from /setup
    assert client.projects.get(id=connected["project"]).model_version == "yolo-shapes"  # predictions shown by title


def _check_prediction(task: dict, samples: list[Sample], version: str) -> tuple[Sample, int]:
    sample = projects.sample_for(task, samples)
    assert len(task["predictions"]) == 1, f"task {task['id']}: {task['predictions']}"
    prediction = task["predictions"][0]
    assert prediction["model_version"] == version
    regions = prediction["result"]
    for region in regions:
        assert (region["from_name"], region["to_name"], region["type"]) == ("label", "image", "rectanglelabels")
        # the size the browser shows: EXIF-turned images have width and height swapped against the stored pixels
        assert (region["original_width"], region["original_height"]) == (sample.width, sample.height)
    return sample, matched(sample, regions)


def test_2_opening_a_task_returns_boxes_where_the_objects_are(label_studio: LabelStudioServer,
                                                               connected: dict) -> None:
    project, samples = connected["project"], connected["samples"]
    ids = projects.task_ids(label_studio, project)
    assert len(ids) == 8
    kinds = {"upload": 0, "local-files": 0}
    found = total = 0
    for task_id in ids:
        task = projects.open_task(label_studio, task_id)
        kinds["local-files" if "/data/local-files/" in task["data"]["image"] else "upload"] += 1
        sample, hits = _check_prediction(task, samples, connected["ml"].model_version)
        assert hits >= 1, f"task {task_id} ({sample.path.name}, EXIF {sample.orientation}): no box matches the truth"
        found, total = found + hits, total + len(sample.shapes)
    assert kinds == {"upload": 4, "local-files": 4}
    assert found / total >= 0.9, f"only {found} of {total} objects found with IoU >= 0.5 and the right label"


def test_3_retrieve_predictions_stores_one_for_every_task(label_studio: LabelStudioServer, backend: BackendServer,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    project = projects.create_project(label_studio, "e2e: retrieve predictions")
    folder: Path = label_studio.document_root / f"bulk-{project}"
    samples = write_samples(folder, 50, first_seed=1000, orientations=ORIENTATIONS)
    projects.import_local_tasks(label_studio, project, [s.path for s in samples])
    ml = projects.connect_backend(label_studio, project, backend.url, title="yolo-bulk")
    client = label_studio.client()
    assert all(t["total_predictions"] == 0 for t in _tasks(label_studio, project))

    client.actions.create(id="retrieve_tasks_predictions", project=project,
                          selected_items={"all": True, "excluded": []})

    tasks = _tasks(label_studio, project)
    assert len(tasks) == 50
    missing = [t["id"] for t in tasks if t["total_predictions"] != 1]
    assert not missing, f"no prediction stored for tasks {missing}"
    found = total = 0
    for task in tasks:
        [prediction] = label_studio.api("GET", "/api/predictions", params={"task": task["id"]}).json()
        assert prediction["model_version"] == ml.model_version
        sample = projects.sample_for(task, samples)
        found += matched(sample, prediction["result"])
        total += len(sample.shapes)
    assert found / total >= 0.9, f"only {found} of {total} objects found"


def _tasks(ls: LabelStudioServer, project: int) -> list[dict]:
    answer = ls.api("GET", "/api/tasks", params={"project": project, "page_size": 1000, "fields": "all"})
    answer.raise_for_status()
    return answer.json()["tasks"]
