"""Smart clicks and boxes through the real app: the tiny test models answer (no ASSIST_MODEL), then a
segment-anything checkpoint built from Ultralytics' config (random weights: plumbing, formats, caching).

The labels are ones no class of the models knows ("receipt"): a smart tool answers with the
object pointed at, labelled as the annotator chose.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support.sample_images import iou as box_iou
from tests.support.sample_images import write_sample
from tests.support.tiny_segment import write
from yolo_backend.config import Settings
from yolo_backend.kinds import masks

pytestmark = pytest.mark.slow  # trains the tiny models on a machine's first run

POINT_CONFIG = ('<View><Image name="image" value="$image"/>'
                '<KeyPointLabels name="click" toName="image" smart="true"><Label value="receipt"/></KeyPointLabels>'
                '<BrushLabels name="mask" toName="image"><Label value="receipt"/></BrushLabels>'
                '<PolygonLabels name="outline" toName="image"><Label value="receipt"/></PolygonLabels></View>')
BOX_CONFIG = ('<View><Image name="image" value="$image"/>'
              '<RectangleLabels name="box" toName="image" smart="true" model_path="det.pt">'
              '<Label value="receipt"/></RectangleLabels></View>')


def click(x: float, y: float, width: int, height: int, label: str = "receipt") -> dict:
    return {"result": [{"id": "k1", "type": "keypointlabels", "from_name": "click", "to_name": "image",
                        "original_width": width, "original_height": height, "image_rotation": 0, "is_positive": True,
                        "value": {"x": x / width * 100, "y": y / height * 100, "width": 0.5,
                                  "keypointlabels": [label]}}]}


def drawn_box(box: tuple[float, float, float, float], width: int, height: int) -> dict:
    x1, y1, x2, y2 = box
    return {"result": [{"id": "r1", "type": "rectanglelabels", "from_name": "box", "to_name": "image",
                        "original_width": width, "original_height": height, "image_rotation": 0,
                        "value": {"x": x1 / width * 100, "y": y1 / height * 100, "width": (x2 - x1) / width * 100,
                                  "height": (y2 - y1) / height * 100, "rotation": 0,
                                  "rectanglelabels": ["receipt"]}}]}


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def centre(points) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    return sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    from ultralytics.models.sam.build import build_mobile_sam

    from tests.support.tiny_segment import tiny_segment_model
    from tests.support.trained_model import trained_shapes_model

    root = tmp_path_factory.mktemp("assist-root")
    shutil.copyfile(tiny_segment_model(), root / "seg.pt")
    shutil.copyfile(trained_shapes_model(), root / "det.pt")
    import torch

    torch.save(build_mobile_sam(None).state_dict(), root / "mobile_sam.pt")  # random weights, the real network
    docs = tmp_path_factory.mktemp("assist-docs")
    shapes = [write(docs, 61_000 + i) for i in range(4)]
    boxes = [write_sample(docs, 62_000 + i) for i in range(3)]
    return root, docs, shapes, boxes


def client_for(world, **overrides):  # type: ignore[no-untyped-def]
    from model import YOLOBackend
    from yolo_backend.assist import Assistant
    from yolo_backend.web.http_api import create_app

    root, docs, _, _ = world
    settings = Settings.from_env({}, model_root=str(root), model_path="seg.pt", model_dir=str(docs.parent / "state"),
                                 local_files_document_root=str(docs), **overrides)
    backend = YOLOBackend(settings)
    backend.store.start(background=False)
    assistant = Assistant(backend)
    return create_app(backend, assistant=assistant).test_client(), assistant


@pytest.fixture(scope="module")
def yolo_client(world):  # type: ignore[no-untyped-def]
    client, _ = client_for(world)
    return client


def ask(client, path: Path, context: dict | None, config: str = POINT_CONFIG) -> list[dict]:  # type: ignore[no-untyped-def]
    task = {"id": abs(hash(path.name)) % 10_000, "data": {"image": f"/data/local-files/?d={path.name}"}}
    body = {"tasks": [task], "label_config": config, "project": "5.1", "params": {"context": context}}
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.json
    [prediction] = answer.json["results"]
    return prediction["result"]


def test_a_click_on_a_shape_becomes_its_mask_and_outline_with_the_annotators_label(world, yolo_client) -> None:
    _, _, shapes, _ = world
    worst = 1.0
    for sample in shapes:
        for (_, outline), truth in zip(sample.objects, sample.masks()):
            regions = ask(yolo_client, sample.path, click(*centre(outline), sample.width, sample.height))
            assert sorted(r["type"] for r in regions) == ["brushlabels", "polygonlabels"], regions
            brush = next(r for r in regions if r["type"] == "brushlabels")
            assert brush["from_name"] == "mask" and brush["value"]["brushlabels"] == ["receipt"]
            assert next(r for r in regions if r["type"] == "polygonlabels")["value"]["polygonlabels"] == ["receipt"]
            worst = min(worst, mask_iou(masks.region_mask(brush), truth))
    print(f"\nworst mask IoU of a clicked shape with the drawn one: {worst:.3f}")
    assert worst >= 0.6


def test_a_click_on_background_answers_no_region(world, yolo_client) -> None:
    _, _, shapes, _ = world
    for sample in shapes:
        taken = np.logical_or.reduce(sample.masks())
        ys, xs = np.nonzero(~taken)
        far = [(x, y) for x, y in zip(xs[::97], ys[::97])
               if all(math.dist((x, y), centre(o)) > 40 for _, o in sample.objects)][:3]
        for x, y in far:
            assert ask(yolo_client, sample.path, click(float(x), float(y), sample.width, sample.height)) == []


def test_a_loose_box_becomes_the_tight_box_of_the_shape(world, yolo_client) -> None:
    _, _, _, samples = world
    fits = []
    for sample in samples:
        for shape in sample.shapes:
            x1, y1, x2, y2 = shape.box
            pad = 0.2 * (x2 - x1)
            loose = (max(0, x1 - pad), max(0, y1 - pad), min(sample.width, x2 + pad), min(sample.height, y2 + pad))
            [region] = ask(yolo_client, sample.path, drawn_box(loose, sample.width, sample.height), BOX_CONFIG)
            assert region["type"] == "rectanglelabels" and region["value"]["rectanglelabels"] == ["receipt"]
            v = region["value"]
            tight = (v["x"] * sample.width / 100, v["y"] * sample.height / 100,
                     (v["x"] + v["width"]) * sample.width / 100, (v["y"] + v["height"]) * sample.height / 100)
            fits.append((box_iou(tight, shape.box), box_iou(loose, shape.box)))
    print(f"\nIoU with the true box, answered vs drawn: {[(round(a, 2), round(b, 2)) for a, b in fits]}")
    assert all(answered >= 0.8 and answered > drawn for answered, drawn in fits)


def test_a_label_no_smart_control_offers_answers_no_region_and_no_context_pre_labels(world, yolo_client) -> None:
    _, _, shapes, _ = world
    sample = shapes[0]
    x, y = centre(sample.objects[0][1])
    assert ask(yolo_client, sample.path, click(x, y, sample.width, sample.height, label="other")) == []
    plain = ask(yolo_client, sample.path, None, POINT_CONFIG.replace("receipt", "red"))
    assert plain and {r["type"] for r in plain} <= {"brushlabels", "polygonlabels"}  # the pre-labels, as without


def test_a_malformed_context_is_a_400_naming_the_region(yolo_client, world) -> None:
    _, _, shapes, _ = world
    bad = {"result": [{"type": "keypointlabels", "to_name": "image", "value": {"x": "left"}}]}
    task = {"id": 1, "data": {"image": f"/data/local-files/?d={shapes[0].path.name}"}}
    answer = yolo_client.post("/predict", json={"tasks": [task], "label_config": POINT_CONFIG,
                                                "params": {"context": bad}})
    assert answer.status_code == 400 and "'x'" in answer.json["message"]


def test_with_a_segment_anything_checkpoint_clicks_reuse_the_image_embedding(world) -> None:
    client, assistant = client_for(world, assist_model="mobile_sam.pt")
    encoded = []
    segmenter = assistant._load()
    assert segmenter is not None and assistant.status()["state"] == "ready"
    segmenter.model.model.image_encoder.register_forward_hook(lambda *_: encoded.append(1))
    _, _, shapes, _ = world
    first, second = shapes[0], shapes[1]
    for sample in (first, first, second, first):
        x, y = centre(sample.objects[0][1])
        regions = ask(client, sample.path, click(x, y, sample.width, sample.height))
        # random weights: some mask, in Label Studio's formats; what it covers proves nothing
        assert all(r["value"][r["type"]] == ["receipt"] for r in regions)
        assert all(masks.region_mask(r) is not None for r in regions if r["type"] == "brushlabels")
    assert len(encoded) == 2  # the first image once, the second once; its later clicks ran the decoder only
    assert client.get("/health").json["assist"] == {"model": "mobile_sam.pt", "state": "ready",
                                                    "message": "mobile_sam.pt answers smart clicks and boxes"}


def test_a_missing_assist_model_is_said_on_health_and_yolo_answers(world) -> None:
    client, _ = client_for(world, assist_model="sam2_t.pt", weights_download=False)
    _, _, shapes, _ = world
    sample = shapes[0]
    x, y = centre(sample.objects[0][1])
    regions = ask(client, sample.path, click(x, y, sample.width, sample.height))
    assert regions  # the served YOLO checkpoint answered
    health = client.get("/health").json["assist"]
    assert health["state"] == "error" and "sam2_t.pt" in health["message"] and "put" in health["message"]


def test_a_task_without_its_image_is_a_clear_error_and_the_next_click_is_answered(world, yolo_client) -> None:
    _, _, shapes, _ = world
    sample = shapes[0]
    x, y = centre(sample.objects[0][1])
    answer = yolo_client.post("/predict", json={"tasks": [{"id": 3, "data": {"other": "x"}}],
                                                "label_config": POINT_CONFIG,
                                                "params": {"context": click(x, y, sample.width, sample.height)}})
    assert 400 <= answer.status_code < 500 and "no image URL" in answer.json["message"], answer.json
    assert ask(yolo_client, sample.path, click(x, y, sample.width, sample.height))
