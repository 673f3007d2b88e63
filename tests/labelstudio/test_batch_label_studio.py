"""The batch commands against a real Label Studio (the session fixture of tests/support/label_studio.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.region_boxes import region_box
from tests.support.synthetic import draw_sample, write_yolo_dataset
from yolo_backend.cli import main
from yolo_backend.formats import convert
from yolo_backend.formats.yolo_folder import find_samples, read_labels
from yolo_backend.labelstudio import ls_client

pytestmark = pytest.mark.e2e

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="square"/><Label value="circle"/></RectangleLabels>
</View>"""
# The random yolov5nu names its classes "0".."79": predicted_values maps two, so inference really runs.
PREDICT_CONFIG = CONFIG.replace('value="square"', 'value="square" predicted_values="0"').replace(
    'value="circle"', 'value="circle" predicted_values="1"')


def new_project(label_studio, title: str, config: str = CONFIG) -> int:
    return label_studio.client().projects.create(title=f"{title} {uuid.uuid4().hex[:6]}", label_config=config).id


def connection(label_studio) -> list[str]:
    return ["--url", label_studio.base_url, "--api-key", label_studio.legacy_token]


def image_tasks(label_studio, folder: Path, count: int) -> list[dict]:
    """``count`` small generated images under the local-files root, as tasks without predictions."""
    folder.mkdir(parents=True)
    tasks = []
    for seed in range(count):
        img, _ = draw_sample(seed, size=(192, 160), min_side=30, max_side=70)
        img.save(folder / f"{seed:04d}.jpg", quality=85)
        tasks.append({"data": {"image": label_studio.local_files_url(folder / f"{seed:04d}.jpg")}})
    return tasks


def stored(label_studio, project: int) -> list:
    return label_studio.client().predictions.list(project=project)


def test_imported_tasks_show_the_label_files_boxes(label_studio, tmp_path: Path) -> None:
    root = label_studio.document_root / f"import-{uuid.uuid4().hex[:6]}"
    write_yolo_dataset(root, 8, 2, seed=11)
    project = new_project(label_studio, "import-yolo")
    out = tmp_path / "tasks.json"
    assert main(["import-yolo", str(root), "--document-root", str(label_studio.document_root), "-o", str(out),
                 "--model-version", "from-yolo", "--project", str(project), *connection(label_studio)]) == 0

    client = label_studio.client()
    tasks = {t.data["image"]: t for t in client.tasks.list(project=project, fields="all")}
    assert len(tasks) == 10
    for sample in find_samples(root):
        task = tasks[label_studio.local_files_url(sample.image)]
        [prediction] = task.predictions
        assert prediction.model_version == "from-yolo"
        got = sorted((region_box(r, {"square": 0, "circle": 1}) for r in prediction.result),
                     key=lambda b: (b.cx, b.cy))
        want = sorted((b for b, _ in read_labels(sample.label)), key=lambda b: (b.cx, b.cy))
        assert len(got) == len(want) > 0
        for a, b in zip(got, want):
            assert a.class_id == b.class_id
            assert max(abs(a.cx - b.cx), abs(a.cy - b.cy), abs(a.w - b.w), abs(a.h - b.h)) <= 1e-4
    # The URL written into the tasks is one Label Studio serves, once the folder is a local storage.
    client.import_storage.local.create(project=project, path=str(root), use_blob_urls=True)
    any_url = next(iter(tasks))
    assert label_studio.api("GET", any_url).status_code == 200


@pytest.mark.slow
def test_prelabel_200_tasks_once_then_nothing(label_studio, random_model_root: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    project = new_project(label_studio, "prelabel", PREDICT_CONFIG)
    tasks = image_tasks(label_studio, label_studio.document_root / f"pre-{uuid.uuid4().hex[:6]}", 210)
    ls_client.import_tasks(label_studio.client(), project, tasks, chunk_size=100)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("IMGSZ", "160")  # CPU-cheap; the count of predictions is what is tested here
    monkeypatch.setenv("LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.document_root))
    command = ["prelabel", "--project", str(project), "--model-root", str(random_model_root),
               "--model-path", "yolov5nu.pt", "--chunk-size", "40", *connection(label_studio)]

    assert main(command) == 0
    assert "210 done, 0 skipped (already predicted), 0 failed, of 210 tasks" in capsys.readouterr().out
    first = stored(label_studio, project)
    assert len(first) == 210 and len({p.task for p in first}) == 210
    assert len({p.model_version for p in first}) == 1 and first[0].model_version.startswith("yolov5nu-")

    assert main(command) == 0
    assert "0 done, 210 skipped (already predicted), 0 failed" in capsys.readouterr().out
    assert len(stored(label_studio, project)) == 210


@pytest.fixture
def running_backend(random_model_root: Path, tmp_path: Path, label_studio) -> Iterator[str]:
    """The real backend under gunicorn (tests/support/backend_server.py), reading local files directly."""
    from tests.support.backend_server import start_backend

    server = start_backend(tmp_path / "backend", {
        "MODEL_ROOT": str(random_model_root), "MODEL_PATH": "yolov5nu.pt", "IMGSZ": "160",
        "LOCAL_FILES_DOCUMENT_ROOT": str(label_studio.document_root),
        "LABEL_STUDIO_URL": label_studio.base_url, "LABEL_STUDIO_API_KEY": label_studio.legacy_token,
        "ADMIN_OPEN": "true"})  # /bulk/* start writes into Label Studio: basic auth or ADMIN_OPEN
    yield server.url
    server.stop()


@pytest.mark.slow  # starting gunicorn and loading the model: about 35 s
def test_prelabel_through_a_backends_bulk_job_reports_failures_and_resumes(label_studio, running_backend: str,
                                                                 capsys) -> None:
    project = new_project(label_studio, "prelabel-remote", PREDICT_CONFIG)
    folder = label_studio.document_root / f"remote-{uuid.uuid4().hex[:6]}"
    tasks = image_tasks(label_studio, folder, 12)
    moved = [folder / f"{i:04d}.jpg" for i in (3, 7)]
    for path in moved:  # two images missing on the first run
        path.rename(path.with_suffix(".away"))
    ls_client.import_tasks(label_studio.client(), project, tasks)
    command = ["prelabel", "--project", str(project), "--backend", running_backend, "--chunk-size", "5",
               *connection(label_studio)]

    assert main(command) == 1
    text = capsys.readouterr().out
    assert "10 done, 0 skipped (already predicted), 2 failed, of 12 tasks" in text
    assert "2 x predict: media (e.g. task" in text and "not found" in text  # the job's failures, with the reason

    for path in moved:
        path.with_suffix(".away").rename(path)
    assert main(command) == 0
    assert "2 done, 10 skipped (already predicted), 0 failed" in capsys.readouterr().out
    assert len(stored(label_studio, project)) == 12


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union else 0.0


@pytest.mark.slow
def test_prelabel_with_a_trained_model_stores_the_right_boxes(label_studio, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from tests.support.trained_model import RECIPE, trained_shapes_model

    model = trained_shapes_model()  # cached; trains on first use (minutes)
    project = new_project(label_studio, "prelabel-trained")
    folder = label_studio.document_root / f"trained-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    truth, tasks = {}, []
    for seed in range(900_000, 900_010):  # seeds the model never saw
        img, shapes = draw_sample(seed)
        img.save(folder / f"{seed}.png")
        url = label_studio.local_files_url(folder / f"{seed}.png")
        truth[url] = [(s.label, tuple(100 * v / d for v, d in zip(s.box, img.size * 2))) for s in shapes]
        tasks.append({"data": {"image": url}})
    ls_client.import_tasks(label_studio.client(), project, tasks)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.document_root))
    monkeypatch.setenv("IMGSZ", str(RECIPE["imgsz"]))  # the scale the model learned
    assert main(["prelabel", "--project", str(project), "--model-root", str(model.parent), "--model-path", model.name,
                 *connection(label_studio)]) == 0
    assert "10 done" in capsys.readouterr().out

    found = matched = 0
    for task in label_studio.client().tasks.list(project=project, fields="all"):
        [prediction] = task.predictions
        boxes = [(r["value"]["rectanglelabels"][0], (r["value"]["x"], r["value"]["y"],
                  r["value"]["x"] + r["value"]["width"], r["value"]["y"] + r["value"]["height"]))
                 for r in prediction.result]
        for label, box in truth[task.data["image"]]:
            found += 1
            matched += any(lab == label and iou(box, other) > 0.5 for lab, other in boxes)
    assert matched >= 0.8 * found, f"{matched} of {found} drawn shapes found in the stored predictions"


def test_export_from_a_project_downloads_images_and_leaves_out_skipped(label_studio, tmp_path: Path) -> None:
    root = label_studio.document_root / f"export-{uuid.uuid4().hex[:6]}"
    write_yolo_dataset(root, 6, 0, seed=21)
    project = new_project(label_studio, "export-yolo")
    client = label_studio.client()
    client.import_storage.local.create(project=project, path=str(root), use_blob_urls=True)  # LS serves them then
    assert main(["import-yolo", str(root), "--document-root", str(label_studio.document_root), "--as", "annotations",
                 "-o", str(tmp_path / "tasks.json"), "--project", str(project), *connection(label_studio)]) == 0
    skipped = next(iter(client.tasks.list(project=project, include="id,data")))
    client.annotations.create(id=skipped.id, result=[], was_cancelled=True)
    for annotation in client.annotations.list(id=skipped.id):
        if not annotation.was_cancelled:
            client.annotations.delete(id=annotation.id)

    out = tmp_path / "dataset"  # no --document-root: images come over HTTP with the API key
    assert main(["export-yolo", "--project", str(project), "-o", str(out), *connection(label_studio)]) == 0
    def boxes(sample) -> list[convert.YoloBox]:
        return sorted((b for b, _ in read_labels(sample.label)), key=lambda b: (b.cx, b.cy))

    want = {s.image.name: boxes(s) for s in find_samples(root)}
    got = {s.image.name: boxes(s) for s in find_samples(out)}
    assert set(got) == set(want) - {Path(skipped.data["image"]).name}
    for name, boxes in got.items():
        assert [b.class_id for b in boxes] == [b.class_id for b in want[name]]
        for a, b in zip(boxes, want[name]):
            assert max(abs(a.cx - b.cx), abs(a.cy - b.cy), abs(a.w - b.w), abs(a.h - b.h)) <= 1e-4
    assert (out / "classes.txt").read_text() == "square\ncircle\n"  # the project's label order


VIDEO_CONFIG = """<View><Video name="video" value="$video" framerate="25.0"/>
<VideoRectangle name="box" toName="video"/>
<Labels name="videoLabels" toName="video"><Label value="square"/><Label value="circle"/></Labels></View>"""


@pytest.mark.slow
def test_prelabel_tracks_videos_of_any_length_stores_each_and_resumes(label_studio, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch, capsys,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """No /predict deadline in yolo-ls: a video over VIDEO_PREDICT_SECONDS is tracked whole, progress logged."""
    import logging

    from tests.support import moving_shapes
    from tests.support.trained_model import trained_shapes_model

    model = trained_shapes_model()
    project = new_project(label_studio, "prelabel-video", VIDEO_CONFIG)
    folder = label_studio.document_root / f"videos-{uuid.uuid4().hex[:6]}"
    videos = [moving_shapes.write(folder / "short.mp4", frames=40),
              moving_shapes.write(folder / "long.mp4", frames=250)]
    ls_client.import_tasks(label_studio.client(), project,
                           [{"data": {"video": label_studio.local_files_url(v.path)}} for v in videos])
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.document_root))
    monkeypatch.setenv("VIDEO_PREDICT_SECONDS", "0.001")  # /predict would refuse both videos
    command = ["prelabel", "--project", str(project), "--model-root", str(model.parent), "--model-path", model.name,
               *connection(label_studio)]
    with caplog.at_level(logging.INFO, logger="yolo_backend.labelstudio.prelabel"):
        assert main(command) == 0
    assert "2 done" in capsys.readouterr().out
    assert any("of 250 frames tracked" in r.getMessage() for r in caplog.records)  # progress inside a long video

    frames = {}
    for task in label_studio.client().tasks.list(project=project, fields="all"):
        [prediction] = task.predictions
        regions = prediction.result
        assert regions and {r["type"] for r in regions} == {"videorectangle"}
        assert {r["value"]["labels"][0] for r in regions} <= {"square", "circle"}
        frames[task.data["video"].rsplit("/", 1)[-1]] = {r["value"]["framesCount"] for r in regions}
    assert frames == {"short.mp4": {40}, "long.mp4": {250}}

    assert main(command) == 0  # a second run finds both predicted: nothing to do
    assert "0 done, 2 skipped" in capsys.readouterr().out
