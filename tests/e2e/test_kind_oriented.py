"""Oriented boxes against a real Label Studio: rotated pre-labels on open, retrained and promoted, and in Chromium.

One project whose labels ("ruby", "sapphire") match none of the base's classes ("red",
"blue"): before training its tasks open without pre-labels; its rotated annotations train
an obb version, which is promoted, and a task opened afterwards holds rotated rectangles on
the right objects. A second project names the base's classes and gets them on open at once.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.e2e import projects
from tests.e2e.conftest import backend_env
from tests.e2e.test_browser import labeling_page_regions
from tests.e2e.test_training import report, train, training_status, wait_for
from tests.support import rotated_shapes
from tests.support.backend_server import BackendServer, start_backend
from tests.support.label_studio import LabelStudioServer
from yolo_backend.formats import convert
from yolo_backend.kinds import oriented_boxes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMES = {"base": ("red", "blue"), "own": ("ruby", "sapphire")}
SETTINGS = {"MODEL_PATH": "obb.pt", "IMGSZ": "auto", "RUNTIME": "torch", "TRAIN_EVERY_N": "0", "TRAIN_BATCH": "8",
            "TRAIN_MIN_IMAGES": "8", "TRAIN_THREADS": "2", "TRAIN_EPOCHS": "15", "TRAIN_IMGSZ": "128",
            "TRAIN_PATIENCE": "30"}  # a fresh class head scores ~0 on val for its first epochs: no early stop


def config(labels: tuple[str, str]) -> str:
    return ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
            + "".join(f'<Label value="{label}"/>' for label in labels) + "</RectangleLabels></View>")


def truth_result(sample: rotated_shapes.RotatedSample, labels: tuple[str, str]) -> list[dict[str, Any]]:
    """The known rotated rectangles as Label Studio stores them."""
    return [convert.region(oriented_boxes.value_from_corners(corners, sample.width, sample.height), labels[cls],
                           result_type="rectanglelabels", from_name="label", to_name="image",
                           size=(sample.width, sample.height), region_id=f"r{index}")
            for index, (cls, corners) in enumerate(sample.objects)]


def found_on_objects(sample: rotated_shapes.RotatedSample, result: list[dict], labels: tuple[str, str]) -> int:
    """How many objects a predicted rotated rectangle of their label covers (rotated IoU >= 0.5)."""
    hits = 0
    for cls, corners in sample.objects:
        mine = [oriented_boxes.value_corners(r["value"], sample.width, sample.height) for r in result
                if r["value"].get("rectanglelabels") == [labels[cls]] and r["value"].get("rotation") is not None]
        box = (0.0, 0.0, 1.0, 1.0)
        if mine and oriented_boxes.KIND.overlap([(box, c) for c in mine], [(box, corners)]).max() >= 0.5:
            hits += 1
    return hits


def task_images(ls: LabelStudioServer, project: int) -> dict[int, str]:
    """Task id -> image URL, from the task list (opening a task would ask for its prediction)."""
    answer = ls.api("GET", "/api/tasks", params={"project": project, "page_size": 1000, "fields": "all"})
    answer.raise_for_status()
    return {int(t["id"]): t["data"]["image"] for t in answer.json()["tasks"]}


@pytest.fixture(scope="module")
def obb_backend(label_studio: LabelStudioServer, tmp_path_factory: pytest.TempPathFactory):
    from tests.support.tiny_obb import tiny_obb_model

    root = tmp_path_factory.mktemp("obb-root")
    shutil.copyfile(tiny_obb_model(), root / "obb.pt")
    server = start_backend(tmp_path_factory.mktemp("obb-backend"), backend_env(label_studio, root, **SETTINGS))
    yield server
    server.stop()


def test_rotated_pre_labels_on_open_match_the_rectangles(label_studio: LabelStudioServer,
                                                         obb_backend: BackendServer) -> None:
    project = int(label_studio.client().projects.create(title="e2e: obb", label_config=config(NAMES["base"])).id)
    samples = [rotated_shapes.write(label_studio.document_root / f"obb-{project}", 8100 + i, o)
               for i, o in enumerate((1, 6, 3, 8))]
    projects.import_local_tasks(label_studio, project, [s.path for s in samples])
    projects.connect_backend(label_studio, project, obb_backend.url)
    objects = hits = 0
    for task_id in projects.task_ids(label_studio, project):
        task = projects.open_task(label_studio, task_id)
        sample = next(s for s in samples if s.path.name in task["data"]["image"])
        result = task["predictions"][0]["result"]
        objects, hits = objects + len(sample.objects), hits + found_on_objects(sample, result, NAMES["base"])
    print(f"\n[obb on open] {hits} of {objects} rotated rectangles found (rotated IoU >= 0.5), EXIF 1/6/3/8")
    assert hits >= objects - 1, (hits, objects)

    # the labeling page in Chromium shows every predicted rotated rectangle
    first = projects.task_ids(label_studio, project)[0]
    predicted = projects.open_task(label_studio, first)["predictions"][0]["result"]
    shown = labeling_page_regions(label_studio, project, first, "e2e-labeling-page-obb.png", len(predicted))
    assert shown == len(predicted) >= 1


def test_rotated_annotations_train_a_promoted_obb_version(label_studio: LabelStudioServer,
                                                          obb_backend: BackendServer) -> None:
    labels = NAMES["own"]
    client = label_studio.client()
    project = int(client.projects.create(title="e2e: obb training", label_config=config(labels)).id)
    samples = [rotated_shapes.write(label_studio.document_root / f"obb-train-{project}", 8200 + i, (1, 6, 3, 8)[i % 4])
               for i in range(36)]
    projects.import_local_tasks(label_studio, project, [s.path for s in samples])
    ml = projects.connect_backend(label_studio, project, obb_backend.url, title="obb")
    ids = projects.task_ids(label_studio, project)
    by_task = {task_id: next(s for s in samples if s.path.name in image)  # listed: opening would predict
               for task_id, image in task_images(label_studio, project).items()}
    annotated, fresh = ids[:32], ids[32:]  # 4 never opened before (24 once trained on 14: F1 0.25)
    for task_id in annotated:
        client.annotations.create(id=task_id, result=truth_result(by_task[task_id], labels), project=project)
    wait_for("the annotation webhooks",
             lambda: training_status(obb_backend, project)["changes_since_last_run"] == len(annotated), timeout=60)
    run = train(label_studio, obb_backend, ml, project, timeout=600)
    report("obb", run)
    assert run["state"] == "promoted", run
    assert run["metrics"]["task"] == "obb" and run["metrics"]["candidate"]["f1"] > run["metrics"]["served"]["f1"]

    assert client.ml.get(id=ml.id).model_version == run["version"]  # Label Studio asks /setup, learns it
    objects = hits = 0
    seen = []
    for task_id in fresh:
        result = projects.open_task(label_studio, task_id)["predictions"]
        newest = next(p for p in result if p["model_version"] == run["version"])["result"]
        objects += len(by_task[task_id].objects)
        hits += found_on_objects(by_task[task_id], newest, labels)
        seen.append(([(r["value"], r.get("score")) for r in newest], by_task[task_id]))
    print(f"[obb after training] {hits} of {objects} rotated rectangles found by {run['version']}")
    assert hits >= objects // 4, seen  # measured 4, 5 and 6 of 8 in three runs
