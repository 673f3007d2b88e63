"""NMS IoU: /predict keeps the overlapping objects ``YOLO(path).predict(image)`` keeps.

With ``IOU=auto`` (the default) every checkpoint is served at its own NMS IoU, which for
Ultralytics is its ``cfg/default.yaml`` value (0.7) unless the model overrides it. At the
0.45 served before, a pair of same-class boxes overlapping by IoU 0.45-0.7 lost one box.
The checkpoint is a calibrated random yolov5nu: it proposes many overlapping boxes on a
generated image, so which of them survive is decided by NMS alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ultralytics import YOLO
from ultralytics.cfg import DEFAULT_CFG

from model import YOLOBackend
from tests.support.random_model import build
from tests.support.synthetic import draw_sample
from yolo_backend.config import Settings
from yolo_backend.formats.overlap import box_iou
from yolo_backend.serving.loader import load_detector
from yolo_backend.web.http_api import create_app

CONF = 0.25  # Ultralytics' predict default, and the served threshold here
TRAINED_AT = 320
IMAGES = (0, 1)  # seeds of generated images on which the random model's boxes overlap by IoU 0.45-0.7 (measured)
NAMES = [str(i) for i in range(80)]  # yolov5nu.yaml: 80 classes named by number
CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
          + "".join(f'<Label value="{n}"/>' for n in NAMES) + "</RectangleLabels></View>")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODEL_ROOT with ``det.pt``: yolov5nu, calibrated random weights, saying it was trained at 320 px."""
    folder = tmp_path_factory.mktemp("iou-root")
    path = build(folder / "det.pt", arch="yolov5nu.yaml", class_bias=-6.0)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ckpt["train_args"] = {**(ckpt.get("train_args") or {}), "imgsz": TRAINED_AT}
    torch.save(ckpt, path)
    return folder


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("iou-docs")
    for seed in IMAGES:
        draw_sample(seed)[0].save(folder / f"{seed}.png")
    return folder


def _plain(path: Path, image: Path) -> tuple[np.ndarray, np.ndarray]:
    """Boxes and classes of ``YOLO(path).predict(image)`` with no options at all."""
    boxes = YOLO(str(path)).predict(str(image), verbose=False)[0].boxes
    return boxes.xyxy.numpy(), boxes.cls.numpy().astype(int)


def _nms_decides(boxes: np.ndarray, classes: np.ndarray) -> int:
    """Same-class pairs overlapping by IoU in (0.45, 0.7): the ones NMS at 0.45 would have merged."""
    ious = box_iou(boxes, boxes)
    same = (classes[:, None] == classes[None, :]) & ~np.eye(len(classes), dtype=bool)
    return int(((ious > 0.45) & (ious < DEFAULT_CFG.iou) & same).sum() // 2)


def test_iou_defaults_to_auto_and_a_number_still_wins() -> None:
    assert Settings.from_env({}).fixed_iou is None
    assert Settings.from_env({"IOU": "0.5"}).fixed_iou == 0.5
    with pytest.raises(ValueError, match=r"IOU='1\.5'"):
        Settings.from_env({"IOU": "1.5"})
    with pytest.raises(ValueError, match="IOU='high'"):
        Settings.from_env({"IOU": "high"})


def test_a_checkpoint_is_served_at_ultralytics_own_nms_iou(root: Path) -> None:
    detector = load_detector(root / "det.pt", device="cpu")
    assert detector.iou == DEFAULT_CFG.iou == 0.7  # cfg/default.yaml of the installed package
    assert load_detector(root / "det.pt", device="cpu", iou=0.5).iou == 0.5


def test_predict_keeps_the_overlapping_boxes_the_plain_call_keeps(root: Path, docs: Path) -> None:
    settings = Settings.from_env({}, model_root=str(root), model_path="det.pt", model_dir=str(docs.parent / "state"),
                                 local_files_document_root=str(docs), model_score_threshold=CONF, runtime="torch",
                                 class_thresholds=False)
    backend = YOLOBackend(settings)
    backend.store.start(background=False)
    try:
        client = create_app(backend).test_client()
        decided = 0
        for seed in IMAGES:
            boxes, classes = _plain(root / "det.pt", docs / f"{seed}.png")
            decided += _nms_decides(boxes, classes)
            task = {"id": seed, "data": {"image": f"/data/local-files/?d={seed}.png"}}
            answer = client.post("/predict", json={"tasks": [task], "label_config": CONFIG, "project": "1.1"})
            assert answer.status_code == 200, answer.json
            ours = answer.json["results"][0]["result"]
            assert len(ours) == len(boxes), f"image {seed}: /predict {len(ours)} boxes, plain {len(boxes)}"
            remaining = list(ours)
            for box, cls in zip(boxes.tolist(), classes.tolist()):
                found = next((r for r in remaining if r["value"]["rectanglelabels"] == [NAMES[cls]]
                              and box_iou(np.array([box]), np.array([_pixels(r)]))[0, 0] >= 0.99), None)
                assert found is not None, f"image {seed}: the plain call's class {cls} box {box} is missing"
                remaining.remove(found)
        assert decided >= 1, "the images must hold boxes that only NMS at 0.7 keeps"
    finally:
        backend.close()


def _pixels(region: dict) -> list[float]:
    """A rectanglelabels region's box in pixels of its image."""
    v, w, h = region["value"], region["original_width"], region["original_height"]
    x, y = v["x"] * w / 100, v["y"] * h / 100
    return [x, y, x + v["width"] * w / 100, y + v["height"] * h / 100]


def test_an_exported_engine_runs_nms_at_the_checkpoint_s_iou(root: Path, tmp_path: Path) -> None:
    """The export forgets the .pt's settings; the engine must still use the .pt's NMS IoU."""
    pytest.importorskip("onnxruntime")
    detector = load_detector(root / "det.pt", device="cpu", runtime="onnx", cache_root=tmp_path)
    assert detector.runtime == "onnx" and detector.iou == DEFAULT_CFG.iou
