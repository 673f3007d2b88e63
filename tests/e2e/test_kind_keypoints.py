"""Keypoints against a real Label Studio: corner points on open, nested under their boxes, and retrained.

The backend serves the tiny pose model (class "square", keypoints top-left ... bottom-left).
A project naming its class gets points (and boxes, from the same checkpoint) on open; a
project whose keypoint labels ask for another class ("tile", through ``predicted_values``)
gets none until its annotations train a pose version, which is promoted and then serves.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.e2e import projects
from tests.e2e.conftest import backend_env
from tests.e2e.test_training import report, train, training_status, wait_for
from tests.support import tiny_pose
from tests.support.backend_server import BackendServer, start_backend
from tests.support.label_studio import LabelStudioServer
from yolo_backend.formats import convert

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SETTINGS = {"MODEL_PATH": "pose.pt", "IMGSZ": "auto", "RUNTIME": "torch", "TRAIN_EVERY_N": "0", "TRAIN_BATCH": "8",
            "TRAIN_MIN_IMAGES": "8", "TRAIN_THREADS": "2", "TRAIN_EPOCHS": "25", "TRAIN_IMGSZ": "128",
            "TRAIN_PATIENCE": "30"}  # a fresh class head scores ~0 on val for its first epochs: no early stop
NEAR = 0.08  # of the image side: a predicted corner this close to the drawn one is found (the tiny model: 1-7 %)


def config(instance: str = "square") -> str:
    """Keypoints first (the control training learns), then the box control on the same image and model."""
    points = "".join(f'<Label value="{name}" predicted_values="{instance}"/>' for name in tiny_pose.KEYPOINTS)
    return (f'<View><Image name="image" value="$image"/><KeyPointLabels name="kp" toName="image">{points}'
            f'</KeyPointLabels><RectangleLabels name="box" toName="image"><Label value="{instance}"/>'
            "</RectangleLabels></View>")


def truth_result(sample: tiny_pose.PoseSample, instance: str) -> list[dict[str, Any]]:
    """Boxes and their corners as Label Studio stores them: points nested by ``parentID``."""
    size = (sample.width, sample.height)
    result = []
    for index, corners in enumerate(sample.squares):
        xs, ys = [x for x, _ in corners], [y for _, y in corners]
        box = {"x": min(xs) / size[0] * 100, "y": min(ys) / size[1] * 100, "rotation": 0,
               "width": (max(xs) - min(xs)) / size[0] * 100, "height": (max(ys) - min(ys)) / size[1] * 100}
        box_id = f"box{index}"
        result.append(convert.region(box, instance, result_type="rectanglelabels", from_name="box", to_name="image",
                                     size=size, region_id=box_id))
        for name, (x, y) in zip(tiny_pose.KEYPOINTS, corners):
            point = convert.region({"x": x / size[0] * 100, "y": y / size[1] * 100, "width": 1}, name,
                                   result_type="keypointlabels", from_name="kp", to_name="image", size=size,
                                   region_id=f"{box_id}-{name}")
            result.append({**point, "parentID": box_id})
    return result


def corners_found(sample: tiny_pose.PoseSample, result: list[dict[str, Any]]) -> int:
    """How many drawn corners a predicted point of their name lies within ``NEAR`` of."""
    hits = 0
    for corners in sample.squares:
        for name, (x, y) in zip(tiny_pose.KEYPOINTS, corners):
            hits += any(r["type"] == "keypointlabels" and r["value"]["keypointlabels"] == [name]
                        and abs(r["value"]["x"] / 100 - x / sample.width) < NEAR
                        and abs(r["value"]["y"] / 100 - y / sample.height) < NEAR for r in result)
    return hits


@pytest.fixture(scope="module")
def pose_backend(label_studio: LabelStudioServer, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pose-root")
    shutil.copyfile(tiny_pose.tiny_pose_model(), root / "pose.pt")
    server = start_backend(tmp_path_factory.mktemp("pose-backend"), backend_env(label_studio, root, **SETTINGS))
    yield server
    server.stop()


def pose_project(ls: LabelStudioServer, server: BackendServer, title: str, instance: str, seeds: range,
                 ) -> tuple[int, Any, dict[int, tiny_pose.PoseSample]]:
    """A project of generated squares (EXIF 1/6/3/8), connected to ``server``; task id -> its sample."""
    project = int(ls.client().projects.create(title=title, label_config=config(instance)).id)
    samples = [tiny_pose.write(ls.document_root / f"pose-{project}", seed, (1, 6, 3, 8)[i % 4])
               for i, seed in enumerate(seeds)]
    projects.import_local_tasks(ls, project, [s.path for s in samples])
    ml = projects.connect_backend(ls, project, server.url, title=title)
    by_task = {}
    for task_id in projects.task_ids(ls, project):
        image = projects.open_task(ls, task_id)["data"]["image"]
        by_task[task_id] = next(s for s in samples if s.path.name in image)
    return project, ml, by_task


def test_points_on_open_match_the_corners_and_nest_under_their_boxes(label_studio: LabelStudioServer,
                                                                     pose_backend: BackendServer) -> None:
    _, _, by_task = pose_project(label_studio, pose_backend, "e2e: keypoints", "square", range(8300, 8304))
    corners = hits = 0
    for task_id, sample in by_task.items():
        result = projects.open_task(label_studio, task_id)["predictions"][0]["result"]
        boxes = {r["id"] for r in result if r["type"] == "rectanglelabels"}
        points = [r for r in result if r["type"] == "keypointlabels"]
        assert len(boxes) >= 1 and points and all(p["parentID"] in boxes for p in points), result
        corners, hits = corners + 4 * len(sample.squares), hits + corners_found(sample, result)
    print(f"\n[keypoints on open] {hits} of {corners} corners found within {NEAR:.0%} of the image, EXIF 1/6/3/8")
    assert hits >= corners - 1, (hits, corners)


def test_keypoint_annotations_train_a_promoted_pose_version(label_studio: LabelStudioServer,
                                                            pose_backend: BackendServer) -> None:
    project, ml, by_task = pose_project(label_studio, pose_backend, "e2e: keypoints training", "tile",
                                        range(8400, 8428))
    ids = sorted(by_task)
    annotated, fresh = ids[:24], ids[24:]  # 16 once gave 9 training images: right points, scores under 0.05
    before = projects.open_task(label_studio, fresh[0])["predictions"]
    assert not any(p["result"] for p in before), "the base's class is not the project's: no points yet"
    client = label_studio.client()
    for task_id in annotated:
        client.annotations.create(id=task_id, result=truth_result(by_task[task_id], "tile"), project=project)
    wait_for("the annotation webhooks",
             lambda: training_status(pose_backend, project)["changes_since_last_run"] == len(annotated), timeout=60)
    run = train(label_studio, pose_backend, ml, project, timeout=600)
    report("keypoints", run)
    assert run["state"] == "promoted", run
    assert run["metrics"]["task"] == "pose" and run["metrics"]["labels"] == ["tile"]
    assert run["metrics"]["candidate"]["f1"] > run["metrics"]["served"]["f1"]

    label_studio.client().actions.create(id="retrieve_tasks_predictions", project=project,
                                         selected_items={"all": False, "included": fresh})
    corners = hits = 0
    for task_id in fresh:
        predictions = projects.open_task(label_studio, task_id)["predictions"]
        newest = next(p for p in predictions if run["version"] in p["model_version"].split("+"))["result"]
        corners, hits = corners + 4 * len(by_task[task_id].squares), hits + corners_found(by_task[task_id], newest)
    print(f"[keypoints after training] {hits} of {corners} corners found by {run['version']}")
    # a 15-epoch fine-tune on 16 images places corners 1-10 % off: measured 15 and 8 of 16 (2 to 6 of 16 with a
    # fresh head's prior uncapped at 128 px, training.fitting); named points on the squares is what this checks
    assert hits >= corners // 4, (hits, corners)
