"""``/predict`` on video tasks: one tracked ``videorectangle`` region per object, bounded in time and size.

The served path end to end (Flask app, local-files and HTTP media, the model store, the
tracker), on a generated video of a square and a circle crossing and a square leaving the
frame, with the cached shapes model as the base checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import moving_shapes
from tests.support.image_server import ImageServer
from yolo_backend.config import Settings
from yolo_backend.formats.overlap import box_iou
from yolo_backend.video import frames, keyframes

CONFIG = """<View><Video name="video" value="$video" framerate="25.0"/>
<VideoRectangle name="box" toName="video"{attrs}/>
<Labels name="videoLabels" toName="video"><Label value="Square" predicted_values="square"/>
<Label value="Circle" predicted_values="circle"/></Labels></View>"""

pytestmark = pytest.mark.slow  # the shapes model trains once per machine (cached)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, moving_shapes.MovingVideo]:
    from tests.support.trained_model import trained_shapes_model

    base = tmp_path_factory.mktemp("video-predict")
    models, docs = base / "models", base / "docs"
    models.mkdir()
    shutil.copyfile(trained_shapes_model(), models / "shapes.pt")
    video = moving_shapes.write(docs / "clips" / "moving.mp4", frames=60)
    return models, docs, video


def client_for(roots: tuple[Path, Path, Any], tmp_path: Path, **overrides: Any) -> Any:
    from yolo_backend.app import build_backend
    from yolo_backend.web.http_api import create_app

    models, docs, _ = roots
    settings = Settings.from_env({}, **{
        "model_root": str(models), "model_path": "shapes.pt", "model_dir": str(tmp_path / "state"),
        "local_files_document_root": str(docs), "device": "cpu", "runtime": "torch",
        "model_score_threshold": 0.5, **overrides})
    backend = build_backend(settings, start=False)
    backend.store.start(background=False)
    return create_app(backend).test_client()


def predict(client: Any, url: str = "/data/local-files/?d=clips/moving.mp4", attrs: str = "",
            tasks: int = 1) -> Any:
    return client.post("/predict", json={
        "tasks": [{"id": 7 + i, "data": {"video": url}} for i in range(tasks)], "project": "5.1700000000",
        "label_config": CONFIG.format(attrs=attrs)})


def test_a_video_task_gets_one_tracked_region_per_object(roots: tuple, tmp_path: Path) -> None:
    _, _, video = roots
    answer = predict(client_for(roots, tmp_path))
    assert answer.status_code == 200, answer.get_json()
    prediction = answer.get_json()["results"][0]
    regions = prediction["result"]
    info = frames.probe(video.path)
    assert prediction["model_version"].startswith("shapes-")
    assert {(r["type"], r["from_name"], r["to_name"]) for r in regions} == {("videorectangle", "box", "video")}
    for region in regions:
        value = region["value"]
        assert value["framesCount"] == 60 and value["duration"] == pytest.approx(2.4)
        assert value["labels"] in (["Square"], ["Circle"]) and 0 < region["score"] <= 1
        assert [k["frame"] for k in value["sequence"]] == sorted(k["frame"] for k in value["sequence"])
        assert value["sequence"][-1]["enabled"] is False
        for key in value["sequence"]:
            assert key["time"] == pytest.approx(key["frame"] / 25, abs=1e-4)  # Label Studio's own: frame / fps
    # each object is covered, under its label, on the frames it is fully in view
    names = ("Square", "Circle")
    for thing in video.objects:
        covered = total = 0
        for number, box in enumerate(thing.boxes, start=1):
            if box is None or box[1] <= 0:
                continue
            total += 1
            shown = [keyframes.frame_boxes(r["value"]["sequence"], info, number) for r in regions
                     if r["value"]["labels"] == [names[thing.class_id]]]
            shown = [s for s in shown if s is not None]
            covered += bool(shown) and box_iou(np.array(shown), np.array([box])).max() >= 0.5
        assert covered >= 0.8 * total, (thing.class_id, covered, total)
    keys = sum(len(r["value"]["sequence"]) for r in regions)
    print(f"\n[video /predict] {len(regions)} regions, {keys} keyframes for {video.frames} frames")
    assert len(regions) <= 4 and keys < video.frames  # thinned: far fewer keyframes than tracked frames


def test_the_same_tracks_as_ultralytics_own_track_call(roots: tuple, tmp_path: Path) -> None:
    """Same answer as the plain call: ``YOLO(path).track(video)`` with its defaults (ByteTrack, conf 0.1)."""
    from ultralytics import YOLO
    from ultralytics.cfg import DEFAULT_CFG

    models, _, video = roots  # NMS as Ultralytics' defaults do it, every track kept: only tracking can differ
    answer = predict(client_for(roots, tmp_path, model_score_threshold=0.0, iou=DEFAULT_CFG.iou))
    regions = answer.get_json()["results"][0]["result"]
    info = frames.probe(video.path)
    plain = YOLO(str(models / "shapes.pt")).track(source=str(video.path), tracker="bytetrack.yaml", verbose=False,
                                                   stream=True)
    worst, worst_key, ids = 1.0, 1.0, set()
    for number, result in enumerate(plain, start=1):
        if result.boxes.id is None:
            continue
        ids |= {int(i) for i in result.boxes.id.tolist()}
        ours = [keyframes.frame_boxes(r["value"]["sequence"], info, number) for r in regions]
        ours = np.array([b for b in ours if b is not None]).reshape(-1, 4)
        theirs = result.boxes.xyxy.numpy()
        assert len(ours) == len(theirs), (number, ours, theirs)
        worst = min(worst, float(box_iou(theirs, ours).max(axis=1).min()))
        keys = [keyframes.frame_boxes([k], info, number) for r in regions for k in r["value"]["sequence"]
                if k["frame"] == number]
        if keys:  # a keyframe is the tracked box itself (to 4 decimals of a percent)
            worst_key = min(worst_key, float(box_iou(np.array(keys), theirs).max(axis=1).min()))
    print(f"\n[video parity] {len(ids)} Ultralytics track ids, {len(regions)} regions; worst IoU on keyframes "
          f"{worst_key:.4f}, between them {worst:.3f}")
    assert len(regions) == len(ids)
    assert worst_key >= 0.99 and worst >= 0.85  # thinned at IoU 0.9 against our own boxes


def test_control_options_stride_and_tracker(roots: tuple, tmp_path: Path) -> None:
    client = client_for(roots, tmp_path)
    strided = predict(client, attrs=' model_frame_stride="3" model_tracker="botsort"')
    assert strided.status_code == 200, strided.get_json()
    regions = strided.get_json()["results"][0]["result"]
    assert regions and all((k["frame"] - 1) % 3 == 0 for r in regions for k in r["value"]["sequence"])

    for attrs, message in ((' model_tracker="../outside.yaml"', "may not contain '..'"),
                           (' model_tracker="missing.yaml"', "not a file under MODEL_ROOT"),
                           (' model_frame_stride="0"', "model_frame_stride='0'"),
                           (' model_conf="high"', "model_conf='high'")):
        answer = predict(client, attrs=attrs)
        assert answer.status_code == 400, (attrs, answer.get_json())
        assert message in answer.get_json()["message"], answer.get_json()


def test_a_tracker_yaml_under_the_model_root_is_used(roots: tuple, tmp_path: Path) -> None:
    models, _, _ = roots
    (models / "strict.yaml").write_text("tracker_type: bytetrack\ntrack_high_thresh: 0.99\ntrack_low_thresh: 0.98\n"
                                        "new_track_thresh: 0.999\ntrack_buffer: 30\nmatch_thresh: 0.8\n"
                                        "fuse_score: true\n")
    answer = predict(client_for(roots, tmp_path), attrs=' model_tracker="strict.yaml"')
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["results"][0]["result"] == []  # no box is sure enough to start a track


def test_too_long_too_big_or_not_a_video_is_a_clear_error_and_the_server_keeps_serving(
        roots: tuple, tmp_path: Path) -> None:
    _, docs, _ = roots
    (docs / "clips" / "notes.mp4").write_bytes(b"not a video")
    slow = client_for(roots, tmp_path, video_predict_seconds=0.001)
    answer = predict(slow)
    assert answer.status_code == 422 and "yolo-ls prelabel" in answer.get_json()["message"], answer.get_json()
    bounded = client_for(roots, tmp_path / "b", max_video_seconds=1.0)
    answer = predict(bounded)
    assert answer.status_code == 422 and "more than the 1 s allowed" in answer.get_json()["message"]
    client = client_for(roots, tmp_path / "c")
    answer = predict(client, url="/data/local-files/?d=clips/notes.mp4")
    assert answer.status_code == 422 and "not a video" in answer.get_json()["message"]
    two = client.post("/predict", json={"tasks": [
        {"id": 1, "data": {"video": "/data/local-files/?d=clips/notes.mp4"}},
        {"id": 2, "data": {"video": "/data/local-files/?d=clips/moving.mp4"}}],
        "label_config": CONFIG.format(attrs="")})
    assert two.status_code == 200
    bad, good = two.get_json()["results"]
    assert bad == [] and good["result"]  # one bad task costs only itself, and gets no prediction stored


def test_an_uploaded_video_streams_to_the_cache_within_max_video_mb(roots: tuple, tmp_path: Path) -> None:
    _, _, video = roots
    served = tmp_path / "srv" / "data" / "upload" / "3"
    served.mkdir(parents=True)
    shutil.copyfile(video.path, served / "clip.mp4")
    server = ImageServer(tmp_path / "srv", token="t" * 40)
    try:
        client = client_for(roots, tmp_path, label_studio_url=server.url, label_studio_api_key="t" * 40)
        answer = predict(client, url="/data/upload/3/clip.mp4")
        assert answer.status_code == 200 and answer.get_json()["results"][0]["result"], answer.get_json()
        small = client_for(roots, tmp_path / "small", label_studio_url=server.url, label_studio_api_key="t" * 40,
                           max_video_mb=0)
        answer = predict(small, url="/data/upload/3/clip.mp4")
        assert answer.status_code == 422 and "MAX_VIDEO_MB" in answer.get_json()["message"], answer.get_json()
        assert not [f for f in (tmp_path / "small").rglob("*") if f.is_file() and f.stat().st_size > 0
                    and "cache" in f.parts]  # nothing half-written left behind
    finally:
        server.close()
