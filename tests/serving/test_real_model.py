"""A real Ultralytics yolov5nu (built from its yaml, random weights) served through /predict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import YOLOBackend
from tests.support.synthetic import draw_sample
from yolo_backend.config import Settings
from yolo_backend.errors import ModelLoadError
from yolo_backend.serving.loader import load_detector
from yolo_backend.web.http_api import create_app

LABELS = "".join(f'<Label value="{i}"/>' for i in range(80))
CONFIG = (f'<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">{LABELS}'
          f'</RectangleLabels><PolygonLabels name="poly" toName="image">{LABELS}</PolygonLabels></View>')


@pytest.fixture(scope="module")
def served(random_model_root: Path, tmp_path_factory: pytest.TempPathFactory):
    docs = tmp_path_factory.mktemp("docs")
    for i in range(3):
        draw_sample(i)[0].save(docs / f"{i}.jpg")
    settings = Settings.from_env({}, model_root=str(random_model_root), model_dir=str(docs.parent / "state"),
                                 local_files_document_root=str(docs), model_score_threshold=0.0, max_det=20)
    backend = YOLOBackend(settings)
    backend.store.start(background=False)
    yield create_app(backend).test_client(), docs, backend
    backend.close()


def test_real_model_results_are_well_formed(served) -> None:
    client, _, _ = served
    tasks = [{"id": i, "data": {"image": f"/data/local-files/?d={i}.jpg"}} for i in range(3)]
    answer = client.post("/predict", json={"tasks": tasks, "label_config": CONFIG, "project": "1.1"})
    assert answer.status_code == 200
    results = answer.json["results"]
    assert len(results) == 3
    for result in results:
        assert result["model_version"].startswith("yolov5nu-")
        regions = result["result"]
        rects = [r for r in regions if r["type"] == "rectanglelabels"]
        polys = [r for r in regions if r["type"] == "polygonlabels"]
        assert 0 < len(rects) <= 20 and len(polys) == len(rects)
        for r in rects:
            v = r["value"]
            assert 0 <= v["x"] <= 100 and 0 <= v["y"] <= 100
            assert v["x"] + v["width"] <= 100.0001 and v["y"] + v["height"] <= 100.0001
        for p in polys:
            assert len(p["value"]["points"]) == 4 and p["value"]["closed"] is True


def test_a_many_task_predict_runs_on_lanes_and_answers_as_one_task_requests_do(tmp_path: Path) -> None:
    """Throughput mode (BULK_LANES=2) splits a bulk request among single-threaded engines: same regions."""
    from tests.support import random_model

    root = tmp_path / "models"
    random_model.build(root / "lively.pt")  # finds boxes, so its ONNX export passes the check and serves
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        draw_sample(i, size=(288, 224))[0].save(docs / f"{i}.jpg")
    settings = Settings.from_env({}, model_root=str(root), model_path="lively.pt", model_dir=str(tmp_path / "state"),
                                 local_files_document_root=str(docs), model_score_threshold=0.3, imgsz="256",
                                 runtime="onnx", bulk_lanes=2)
    backend = YOLOBackend(settings)
    backend.store.start(background=False)
    try:
        client = create_app(backend).test_client()
        detector = backend.store.base().detector
        assert detector.runtime == "onnx" and detector.lane_count == 2
        tasks = [{"id": i, "data": {"image": f"/data/local-files/?d={i}.jpg"}} for i in range(4)]
        bulk = client.post("/predict", json={"tasks": tasks, "label_config": CONFIG, "project": "1.1"}).json
        assert len(detector.lanes) == 2  # the bulk request ran on them
        found = 0
        for task, together in zip(tasks, bulk["results"]):
            alone = client.post("/predict", json={"tasks": [task], "label_config": CONFIG, "project": "1.1"})
            regions = [r for r in alone.json["results"][0]["result"] if r["type"] == "rectanglelabels"]
            shared = [r for r in together["result"] if r["type"] == "rectanglelabels"]
            assert [r["value"]["rectanglelabels"] for r in regions] == [r["value"]["rectanglelabels"] for r in shared]
            for a, b in zip(regions, shared):
                assert abs(a["value"]["x"] - b["value"]["x"]) < 0.1 and abs(a["score"] - b["score"]) < 0.01
            found += len(regions)
        assert found >= 4, "the comparison needs boxes"
    finally:
        backend.close()


def test_same_boxes_as_calling_ultralytics_directly(served, random_model_root: Path) -> None:
    from ultralytics import YOLO

    client, docs, _ = served
    answer = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=1.jpg"}}],
                                           "label_config": CONFIG})
    ours = [r for r in answer.json["results"][0]["result"] if r["type"] == "rectanglelabels"]
    direct = YOLO(str(random_model_root / "yolov5nu.pt")).predict(
        str(docs / "1.jpg"), conf=0.0, max_det=20, imgsz=640, verbose=False)[0]  # NMS at its own IoU, as served
    width, _height = Image.open(docs / "1.jpg").size
    expected = sorted(round(float(b[0]) / width * 100, 2) for b in direct.boxes.xyxy)
    assert sorted(round(r["value"]["x"], 2) for r in ours) == pytest.approx(expected, abs=0.05)


def test_segmentation_checkpoint_gives_polygons(tmp_path: Path) -> None:
    from ultralytics import YOLO

    root = tmp_path / "models"
    root.mkdir()
    YOLO("yolov8n-seg.yaml").save(str(root / "seg.pt"))
    detector = load_detector(root / "seg.pt", imgsz=320)
    img, _ = draw_sample(3)
    found = detector.detect([np.asarray(img)[:, :, ::-1].copy()], conf=0.0)[0]
    assert found, "a random model at conf 0 still proposes boxes"
    outlined = [d for d in found if d.polygon]
    assert len(outlined) > len(found) // 2, "a segmentation model answers with mask outlines"
    for det in outlined:
        xs, ys = zip(*det.polygon)
        assert min(xs) >= 0 and max(xs) <= img.width and min(ys) >= 0 and max(ys) <= img.height


def test_original_yolov5_checkpoint_gets_a_message_that_says_so(tmp_path: Path) -> None:
    pkg = tmp_path / "old" / "models"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "yolo.py").write_text("import torch\nclass Model(torch.nn.Module):\n    pass\n")
    script = "import torch, models.yolo as y; torch.save({'model': y.Model()}, 'best.pt')"
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path / "old", check=True)
    with pytest.raises(ModelLoadError, match="original YOLOv5 repository"):
        load_detector(tmp_path / "old" / "best.pt")


def test_a_file_that_is_no_checkpoint_gets_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match=r"could not load bad\.pt"):
        load_detector(bad)
