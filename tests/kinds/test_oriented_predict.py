"""An obb checkpoint served through /predict: rotated rectangles, the ones ``YOLO(path).predict`` finds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ultralytics import YOLO
from ultralytics.cfg import DEFAULT_CFG

from model import YOLOBackend
from tests.support.random_model import build
from tests.support.synthetic import draw_sample
from yolo_backend.config import Settings
from yolo_backend.kinds import oriented_boxes
from yolo_backend.serving.loader import load_detector
from yolo_backend.web.http_api import create_app

CONF = 0.25  # Ultralytics predict default
TRAINED_AT = 320  # not 640: the checkpoint's own size must be the one served
CLASS_BIAS = -6.0  # measured: tens of boxes above 0.25 per synthetic image at 320 px
NAMES = [str(i) for i in range(80)]  # yolov8n-obb.yaml: 80 classes, named by number
LABELS = "".join(f'<Label value="{n}"/>' for n in NAMES)


def config(control: str = "RectangleLabels", extra: str = "", model_path: str = "obb.pt") -> str:
    return (f'<View><Image name="image" value="$image"/><{control} name="label" toName="image" '
            f'model_path="{model_path}" {extra}>{LABELS}</{control}></View>')


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODEL_ROOT with ``obb.pt`` (yolov8n-obb, calibrated random weights, says 320 px) and ``det.pt``."""
    folder = tmp_path_factory.mktemp("obb-root")
    path = build(folder / "obb.pt", arch="yolov8n-obb.yaml", class_bias=CLASS_BIAS)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ckpt["train_args"] = {**(ckpt.get("train_args") or {}), "imgsz": TRAINED_AT, "task": "obb"}
    torch.save(ckpt, path)
    YOLO("yolov5nu.yaml").save(str(folder / "det.pt"))
    return folder


@pytest.fixture(scope="module")
def served(root: Path, tmp_path_factory: pytest.TempPathFactory):
    docs = tmp_path_factory.mktemp("docs")
    for i in range(3):
        draw_sample(i)[0].save(docs / f"{i}.png")
    settings = Settings.from_env({}, model_root=str(root), model_path="obb.pt",
                                 model_dir=str(docs.parent / "state"), local_files_document_root=str(docs),
                                 model_score_threshold=CONF, iou=DEFAULT_CFG.iou)
    backend = YOLOBackend(settings)
    backend.store.start(background=False)
    yield create_app(backend).test_client(), docs
    backend.close()


def test_an_obb_checkpoint_loads_at_its_own_size(root: Path) -> None:
    detector = load_detector(root / "obb.pt", device="cpu")
    assert detector.task == "obb" and detector.imgsz == TRAINED_AT


@pytest.mark.parametrize("image", range(3))
def test_predict_finds_what_ultralytics_finds(served, root: Path, image: int) -> None:
    client, docs = served
    task = {"id": image, "data": {"image": f"/data/local-files/?d={image}.png"}}
    answer = client.post("/predict", json={"tasks": [task], "label_config": config(), "project": "1.1"})
    assert answer.status_code == 200, answer.json
    ours = answer.json["results"][0]["result"]
    direct = YOLO(str(root / "obb.pt")).predict(str(docs / f"{image}.png"), verbose=False)[0]
    assert len(direct.obb) >= 3, "the random model must find something to compare"
    assert len(ours) == len(direct.obb)
    width, height = ours[0]["original_width"], ours[0]["original_height"]
    remaining = list(ours)
    for corners, cls in zip(direct.obb.xyxyxyxy.tolist(), direct.obb.cls.tolist()):
        found = next(r for r in remaining if r["value"]["rectanglelabels"] == [NAMES[int(cls)]]
                     and _distance(oriented_boxes.value_corners(r["value"], width, height), corners) < 1.0)
        remaining.remove(found)  # one to one: same class, every corner within a pixel
        assert found["type"] == "rectanglelabels" and 0 <= found["value"]["rotation"] < 90


def test_an_obb_checkpoint_behind_polygons_is_a_setup_error_naming_the_fix(served) -> None:
    client, _ = served
    answer = client.post("/setup", json={"project": "2.1", "schema": config("PolygonLabels")})
    assert answer.status_code == 400
    text = answer.json["message"]
    assert "'obb'" in text and "<RectangleLabels>" in text and "model_path" in text


def test_a_detect_checkpoint_forced_to_obb_is_a_setup_error_naming_the_fix(served) -> None:
    client, _ = served
    forced = config(extra=f'{oriented_boxes.FORCE_ATTRIBUTE}="true"', model_path="det.pt")
    client.post("/predict", json={"tasks": [], "label_config": forced, "project": "3.1"})  # loads det.pt
    answer = client.post("/setup", json={"project": "3.1", "schema": forced})
    assert answer.status_code == 400
    text = answer.json["message"]
    assert "'detect'" in text and oriented_boxes.FORCE_ATTRIBUTE in text and "obb checkpoint" in text
    assert client.post("/setup", json={"project": "3.1", "schema": config(model_path="det.pt")}).status_code == 200


def _distance(a: list[tuple[float, float]], b: list[list[float]]) -> float:
    """Largest pixel distance from a corner of ``a`` to the nearest corner of ``b``, and back."""
    def far(p, q) -> float:  # type: ignore[no-untyped-def]
        return max(min(max(abs(x - u), abs(y - v)) for u, v in q) for x, y in p)
    return max(far(a, b), far(b, a))


def test_model_obb_with_an_obb_checkpoint_serves_rotated_rectangles(served) -> None:
    client, _ = served
    forced = config(extra=f'{oriented_boxes.FORCE_ATTRIBUTE}="true"')
    assert client.post("/setup", json={"project": "4.1", "schema": forced}).status_code == 200
    task = {"id": 1, "data": {"image": "/data/local-files/?d=1.png"}}
    answer = client.post("/predict", json={"tasks": [task], "label_config": forced, "project": "4.1"})
    regions = answer.json["results"][0]["result"]
    assert regions and any(r["value"]["rotation"] > 0 for r in regions)
