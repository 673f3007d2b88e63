"""Images stored rotated with an EXIF orientation tag: results follow what the browser shows.

The stand-in detector reports where the red square is in the pixels it receives, so a
missed or doubled rotation shows up as a wrong box or a swapped width and height.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from model import YOLOBackend
from tests.support.standin import CAR_CONFIG, standin_store
from yolo_backend.config import Settings
from yolo_backend.web.http_api import create_app

CONFIG = CAR_CONFIG

STORED = (120, 80)  # stored pixels: width, height
STORED_BOX = (10, 5, 40, 25)  # x1, y1, x2, y2 in stored pixels

# orientation -> (displayed width, height, displayed box), worked out by hand
EXPECTED = {
    1: (120, 80, (10, 5, 40, 25)),
    3: (120, 80, (80, 55, 110, 75)),  # rotated 180
    6: (80, 120, (55, 10, 75, 40)),  # displayed = stored turned 90 degrees clockwise
    8: (80, 120, (5, 80, 25, 110)),  # displayed = stored turned 90 degrees counter-clockwise
}


@pytest.mark.parametrize("orientation", sorted(EXPECTED))
def test_boxes_match_the_displayed_orientation(tmp_path: Path, orientation: int) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    img = Image.new("RGB", STORED, "white")
    ImageDraw.Draw(img).rectangle((STORED_BOX[0], STORED_BOX[1], STORED_BOX[2] - 1, STORED_BOX[3] - 1),
                                  fill=(255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(docs / "photo.png", exif=exif)  # PNG keeps pure colours exact

    settings = Settings.from_env({}, model_root=str(tmp_path / "m"), model_dir=str(tmp_path / "s"),
                                 local_files_document_root=str(docs))
    store, _ = standin_store(settings)
    backend = YOLOBackend(settings, store=store)
    store.start(background=False)
    answer = create_app(backend).test_client().post("/predict", json={
        "tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=photo.png"}}], "label_config": CONFIG})
    backend.close()

    region = answer.json["results"][0]["result"][0]
    width, height, (x1, y1, x2, y2) = EXPECTED[orientation]
    assert (region["original_width"], region["original_height"]) == (width, height)
    value = region["value"]
    assert value["x"] == pytest.approx(x1 / width * 100, abs=1e-3)
    assert value["y"] == pytest.approx(y1 / height * 100, abs=1e-3)
    assert value["width"] == pytest.approx((x2 - x1) / width * 100, abs=1e-3)
    assert value["height"] == pytest.approx((y2 - y1) / height * 100, abs=1e-3)
