"""Hostile and unusual media through the live app: each one answered clearly, the rest of the request unaffected.

Each test is one row of the table in docs/hardening.md. The stand-in detector reports a
box wherever the image is pure red, so "predicted correctly" is checked exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw

from tests.support.live_app import LiveApp, assert_healthy
from tests.support.standin import CAR_CONFIG
from yolo_backend.media.fetcher import open_image

CONFIG = CAR_CONFIG
RED = (255, 0, 0)
BOX = (10, 10, 30, 30)  # the red square, x1 y1 x2 y2 exclusive


def red_square(mode: str = "RGB", size: tuple[int, int] = (100, 50)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).rectangle((BOX[0], BOX[1], BOX[2] - 1, BOX[3] - 1), fill=RED)
    return img if mode == "RGB" else img.convert(mode)


def write_samples(docs: Path) -> None:
    """Every format of the table, each holding the same red square where the format can hold red."""
    red_square().save(docs / "good.png")
    red_square().save(docs / "good.jpg", quality=100, subsampling=0)
    (docs / "truncated.jpg").write_bytes((docs / "good.jpg").read_bytes()[:400])
    (docs / "text.png").write_text("this is not an image")
    (docs / "empty.png").write_bytes(b"")
    red_square("CMYK").save(docs / "cmyk.jpg", quality=100)
    red_square().quantize(4).save(docs / "palette.png")
    red_square("RGBA").save(docs / "alpha.png")
    red_square("LA").save(docs / "gray_alpha.png")
    red_square("L").save(docs / "gray.png")
    red_square("1").save(docs / "bilevel.png")
    Image.new("RGB", (1, 1), RED).save(docs / "one.png")
    red_square().save(docs / "image.webp", lossless=True)
    red_square().save(docs / "image.tiff")
    frames = [red_square(), Image.new("RGB", (100, 50), "blue")]
    frames[0].save(docs / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    gradient = np.tile(np.linspace(0, 65535, 100), (50, 1)).astype(np.uint16)
    Image.fromarray(gradient).save(docs / "gray16.png")
    Image.new("1", (12_000, 12_000)).save(docs / "bomb.png")  # 144 Mpx, a few KB on disk
    outside = docs.parent / "outside.png"
    red_square().save(outside)
    os.symlink(outside, docs / "link_out.png")
    os.symlink(docs / "good.png", docs / "link_in.png")
    os.symlink(docs / "loop_a.png", docs / "loop_b.png")
    os.symlink(docs / "loop_b.png", docs / "loop_a.png")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("media")
    docs = workdir / "docs"
    docs.mkdir()
    write_samples(docs)
    app = LiveApp(workdir, docs)
    yield app
    app.close()


@pytest.fixture(autouse=True)
def still_healthy(live: LiveApp):
    yield
    assert_healthy(live)


def local(name: str) -> str:
    return f"/data/local-files/?d={name}"


def predict(live: LiveApp, urls: list[str]) -> requests.Response:
    tasks = [{"id": i, "data": {"image": url}} for i, url in enumerate(urls)]
    return requests.post(f"{live.url}/predict", json={"tasks": tasks, "label_config": CONFIG}, timeout=30)


def boxes(result: dict[str, Any]) -> list[tuple[float, ...]]:
    return [tuple(round(r["value"][k], 1) for k in ("x", "y", "width", "height")) for r in result["result"]]


def check_surrounded(live: LiveApp, url: str) -> Any:
    """``url`` between two good tasks: the good ones keep their box, whatever ``url`` does."""
    answer = predict(live, [local("good.png"), url, local("good.png")])
    assert answer.status_code == 200, answer.text
    first, middle, last = answer.json()["results"]
    assert boxes(first) == boxes(last) == [(10.0, 20.0, 20.0, 40.0)]
    return middle


@pytest.mark.parametrize("d", [
    "../outside.png", "sub/../../outside.png", "%2e%2e/outside.png", "%2e%2e%2foutside.png", "..%2foutside.png",
    "%252e%252e%252foutside.png", "....//outside.png", "..\\outside.png", "/etc/passwd", "//etc/passwd",
    "%2fetc%2fpasswd", "file:///etc/passwd", "link_out.png", "loop_a.png", "good.png%00.txt",
    "%c0%ae%c0%ae/outside.png", "./../outside.png", "good.png/../../outside.png",
])
def test_traversal_in_every_encoding_is_refused(live: LiveApp, d: str) -> None:
    single = predict(live, [local(d)])
    assert single.status_code in (403, 422), single.text
    assert single.json()["error"] in ("media_denied", "media")
    assert check_surrounded(live, local(d)) == []  # no prediction for it: Label Studio stores nothing


def test_a_symlink_inside_the_root_is_followed(live: LiveApp) -> None:
    assert boxes(predict(live, [local("link_in.png")]).json()["results"][0]) == [(10.0, 20.0, 20.0, 40.0)]


@pytest.mark.parametrize("name, words", [
    ("truncated.jpg", "truncated"), ("text.png", "not a readable image"), ("empty.png", "not a readable image"),
    ("bomb.png", "pixels exceeds MAX_IMAGE_PIXELS"),  # said from the header: refused before decoding
])
def test_broken_images_and_bombs_get_a_clear_422(live: LiveApp, name: str, words: str) -> None:
    single = predict(live, [local(name)])
    assert single.status_code == 422 and single.json()["error"] == "media"
    assert words in single.json()["message"]
    assert check_surrounded(live, local(name)) == []


@pytest.mark.parametrize("name", ["good.jpg", "cmyk.jpg", "palette.png", "alpha.png", "image.webp", "image.tiff",
                                  "animated.gif"])
def test_colour_formats_are_predicted_like_the_png(live: LiveApp, name: str) -> None:
    """The red square is found at the same place (CMYK, palette and lossy JPEG round to near-red)."""
    middle = check_surrounded(live, local(name))
    if name.endswith(".jpg"):  # JPEG shifts pure red slightly: check the decoded colour, not the exact match
        pixels = open_image(Path(live.settings.local_files_document_root) / name, 10**8)
        assert pixels.size == (100, 50) and np.abs(np.asarray(pixels)[15, 15].astype(int) - RED).max() < 40
        return
    assert boxes(middle) == [(10.0, 20.0, 20.0, 40.0)], name


@pytest.mark.parametrize("name, size", [("gray.png", (100, 50)), ("gray_alpha.png", (100, 50)),
                                        ("bilevel.png", (100, 50)), ("gray16.png", (100, 50)), ("one.png", (1, 1))])
def test_gray_and_tiny_images_are_answered_with_their_size(live: LiveApp, name: str, size: tuple[int, int]) -> None:
    single = predict(live, [local(name)])
    assert single.status_code == 200
    check_surrounded(live, local(name))


def test_one_pixel_red_image_gives_a_full_box(live: LiveApp) -> None:
    result = predict(live, [local("one.png")]).json()["results"][0]
    assert boxes(result) == [(0.0, 0.0, 100.0, 100.0)]
    assert (result["result"][0]["original_width"], result["result"][0]["original_height"]) == (1, 1)


def test_16_bit_grayscale_is_scaled_not_clipped(live: LiveApp) -> None:
    """PIL's plain convert would clip every value above 255 to white; the browser shows a gradient."""
    img = open_image(Path(live.settings.local_files_document_root) / "gray16.png", 10**8)
    row = np.asarray(img)[0, :, 0]
    assert img.mode == "RGB" and row[0] == 0 and row[-1] == 255
    assert 120 <= row[50] <= 135, "mid-gray stays mid-gray"
    assert np.all(np.diff(row.astype(int)) >= 0)


def test_32_bit_float_images_are_stretched(tmp_path: Path) -> None:
    path = tmp_path / "f.tiff"
    Image.fromarray(np.tile(np.linspace(-1.0, 1.0, 64, dtype=np.float32), (8, 1))).save(path)
    row = np.asarray(open_image(path, 10**8))[0, :, 0]
    assert row[0] == 0 and row[-1] == 255
