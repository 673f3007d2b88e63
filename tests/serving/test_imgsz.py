"""A checkpoint is served at the size it was trained at: the boxes ``YOLO(path).predict(image)`` gives.

A model trained at 160 px and served at 640 sees every object four times bigger than it
learned them and answers differently; the last test shows that this check would notice.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ultralytics import YOLO
from ultralytics.cfg import DEFAULT_CFG

from tests.support.synthetic import draw_sample
from tests.support.trained_model import trained_shapes_model
from yolo_backend.formats.convert import Detection
from yolo_backend.serving import runtime
from yolo_backend.serving.detector import checkpoint_imgsz
from yolo_backend.serving.loader import load_detector
from yolo_backend.serving.parity import match

CONF = 0.25  # Ultralytics' predict default
IOU = DEFAULT_CFG.iou  # NMS as Ultralytics' defaults do it, so only the image size can differ
IMAGES = [np.ascontiguousarray(np.asarray(draw_sample(seed)[0])[:, :, ::-1]) for seed in range(8)]  # BGR


def _retagged(source: Path, target: Path, imgsz: int) -> Path:
    """The same weights with train args saying ``imgsz``: the size must come from the file, not a constant."""
    ckpt = torch.load(source, map_location="cpu", weights_only=False)
    ckpt["train_args"] = {**ckpt["train_args"], "imgsz": imgsz}
    torch.save(ckpt, target)
    return target


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Checkpoints by the size they say they were trained at (trains the shapes model on first use)."""
    trained = trained_shapes_model()
    return {160: trained, 224: _retagged(trained, tmp_path_factory.mktemp("retagged") / "shapes-224.pt", 224)}


def _ultralytics(path: Path) -> list[list[Detection]]:
    """What a user gets from Ultralytics with no options at all."""
    model = YOLO(str(path))
    out = []
    for image in IMAGES:
        boxes = model.predict(image, verbose=False)[0].boxes
        out.append([Detection(int(c), float(s), tuple(b)) for b, s, c in
                    zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist())])
    return out


def _same(expected: list[list[Detection]], found: list[list[Detection]]) -> bool:
    """Same count per image, and every detection paired one to one (class, IoU >= 0.99, score within 0.01)."""
    return all(len(a) == len(b) == len(match(a, b)) for a, b in zip(expected, found, strict=True))


def test_checkpoint_imgsz_reads_the_training_size(checkpoints: dict[int, Path], tmp_path: Path) -> None:
    for size, path in checkpoints.items():
        assert checkpoint_imgsz(path) == size == YOLO(str(path)).overrides["imgsz"]
    YOLO("yolov5nu.yaml").save(str(tmp_path / "untrained.pt"))
    assert checkpoint_imgsz(tmp_path / "untrained.pt") == 640  # Ultralytics' default, saved with the model
    assert checkpoint_imgsz(SimpleNamespace(overrides={"imgsz": [256, 320]})) == 320
    assert checkpoint_imgsz(SimpleNamespace()) == 640


@pytest.mark.parametrize("size", [160, 224])
@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_served_at_the_trained_size_finds_what_ultralytics_finds(engine: str, size: int, checkpoints, tmp_path) -> None:
    if not runtime.available(engine):
        pytest.skip(f"{engine} is not installed")
    path = checkpoints[size]
    expected = _ultralytics(path)
    assert sum(map(len, expected)) >= 8, "the model must find things, or the comparison proves nothing"
    served = load_detector(path, device="cpu", runtime=engine, cache_root=tmp_path, iou=IOU)
    assert served.imgsz == size and served.runtime == engine
    assert _same(expected, served.detect(IMAGES, conf=CONF))
    if engine == "onnx":  # the export was made, checked and named at the trained size
        folder = runtime.export_dir(tmp_path, runtime.content_key(path), "onnx", size)
        assert served.model.ckpt_path == str(runtime.exported_file(folder, "onnx"))
        assert runtime.read_verdict(folder)["ok"] is True
        import onnxruntime

        meta = onnxruntime.InferenceSession(served.model.ckpt_path).get_modelmeta().custom_metadata_map
        assert meta["imgsz"] == f"[{size}, {size}]"


def test_forcing_640_answers_differently(checkpoints: dict[int, Path]) -> None:
    """The comparison above can fail: the same model at 640 px does not find the same boxes."""
    path = checkpoints[160]
    forced = load_detector(path, device="cpu", imgsz=640, iou=IOU)
    assert forced.imgsz == 640
    assert not _same(_ultralytics(path), forced.detect(IMAGES, conf=CONF))
