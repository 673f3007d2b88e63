"""Check 4: annotations reach the backend, "Start training" trains, the promoted version serves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.e2e import projects
from tests.e2e.conftest import backend_env
from tests.support.backend_server import BackendServer, start_backend
from tests.support.label_studio import LabelStudioServer
from tests.support.sample_images import Sample, write_samples

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ANNOTATED = 10
# A base whose classes are not the project's (random weights, 80 COCO names), as a fresh install has:
# the first run is then compared with nothing and is promoted, so the version must change.
TRAINING = {"MODEL_PATH": "yolov5nu.pt", "RUNTIME": "torch", "TRAIN_EVERY_N": "0", "TRAIN_EPOCHS": "2",
            "TRAIN_IMGSZ": "128", "TRAIN_BATCH": "8", "TRAIN_MIN_IMAGES": "8", "TRAIN_THREADS": "2"}


def truth_result(sample: Sample) -> list[dict]:
    """The known boxes as a Label Studio annotation result (percent of the displayed image)."""
    result = []
    for shape in sample.shapes:
        x1, y1, x2, y2 = shape.box
        result.append({
            "from_name": "label", "to_name": "image", "type": "rectanglelabels",
            "original_width": sample.width, "original_height": sample.height, "image_rotation": 0,
            "value": {"x": 100 * x1 / sample.width, "y": 100 * y1 / sample.height,
                      "width": 100 * (x2 - x1) / sample.width, "height": 100 * (y2 - y1) / sample.height,
                      "rotation": 0, "rectanglelabels": [shape.label]},
        })
    return result


def training_status(server: BackendServer, project: int) -> dict:
    answer = requests.get(f"{server.url}/training/status", params={"project": project}, timeout=5)
    answer.raise_for_status()
    return answer.json()


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@pytest.fixture
def training_backend(label_studio: LabelStudioServer, random_model_root: Path, tmp_path: Path):
    server = start_backend(tmp_path / "backend", backend_env(label_studio, random_model_root, **TRAINING))
    yield server
    server.stop()


def test_4_annotations_train_and_the_promoted_version_serves(label_studio: LabelStudioServer,
                                                             training_backend: BackendServer) -> None:
    client = label_studio.client()
    project = projects.create_project(label_studio, "e2e: training")
    samples = write_samples(label_studio.document_root / f"train-{project}", ANNOTATED + 2, first_seed=500,
                            orientations=(1, 6, 1, 3))
    projects.import_local_tasks(label_studio, project, [s.path for s in samples])
    ml = projects.connect_backend(label_studio, project, training_backend.url, title="yolo-train")
    base_version = ml.model_version
    ids = projects.task_ids(label_studio, project)
    first, never_opened = ids[0], ids[-1]
    assert projects.open_task(label_studio, first)["predictions"][0]["model_version"] == base_version

    # annotations through the API: each reaches the backend as an ANNOTATION_CREATED event
    by_id = {t: projects.sample_for(projects.open_task(label_studio, t), samples) for t in ids[:ANNOTATED]}
    for task_id, sample in by_id.items():
        client.annotations.create(id=task_id, result=truth_result(sample), project=project)
    wait_for("the annotation webhooks", lambda: training_status(training_backend, project)[
        "changes_since_last_run"] == ANNOTATED, timeout=30)

    client.ml.train(id=ml.id)  # the "Start training" button
    run = wait_for("the training run to finish", lambda: _finished(training_backend, project), timeout=300, every=2)
    assert run["state"] == "promoted", run
    assert run["metrics"]["train_images"] + run["metrics"]["holdout_images"] == ANNOTATED
    new_version = run["version"]
    assert new_version and new_version != base_version

    # Label Studio learns the new version from /setup, and predictions now carry it
    assert client.ml.get(id=ml.id).model_version == new_version
    assert projects.open_task(label_studio, never_opened)["predictions"][0]["model_version"] == new_version
    client.actions.create(id="retrieve_tasks_predictions", project=project,
                          selected_items={"all": False, "included": [first]})
    versions = {p["model_version"] for p in projects.open_task(label_studio, first)["predictions"]}
    assert versions == {base_version, new_version}


def _finished(server: BackendServer, project: int) -> dict | None:
    status = training_status(server, project)
    last = status.get("last_run")
    if status["state"] in ("queued", "running") or not last:
        return None
    return last
