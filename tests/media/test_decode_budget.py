"""DECODE_BUDGET_MB: what one worker holds of decoded images is bounded, requests wait, one too big fails alone.

Measured without the budget: one /predict of eight PNGs of 308 kB that decode to 9,999 x 9,999
raised a worker's RSS by 10.4 GB. Here the images are flat 4000 x 4000 PNGs (a few kB each,
48 MB as BGR, about 128 MB while decoding).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.decode_memory import flat_png, run
from yolo_backend.config import Settings

CONFIG = """<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">
<Label value="0"/><Label value="1"/><Label value="2"/></RectangleLabels></View>"""
MARGIN_MB = 100  # allocator slack (glibc keeps some freed blocks) and strip buffers; without the budget: +1 GB


def test_a_request_of_big_images_raises_peak_rss_by_at_most_the_budget() -> None:
    measured = run(side=4000, count=6, budget_mb=200)
    print(f"\n[decode budget] {measured}")
    assert measured["status"] == 200 and measured["results"] == 6, measured
    assert measured["peak_mb"] - measured["rss_before_mb"] < 200 + MARGIN_MB, measured
    assert measured["budget_held_after"] == 0, "every image's bytes were given back"


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.random_model import build

    root = tmp_path_factory.mktemp("models")
    build(root / "yolov5nu.pt")
    return root


def service(tmp_path: Path, model_root: Path, budget_mb: int) -> tuple[Any, Any]:
    from tests.support.synthetic import draw_sample
    from yolo_backend.app import build_backend
    from yolo_backend.web.http_api import create_app

    docs = tmp_path / "docs"
    docs.mkdir()
    flat_png(docs / "big.png", 4000)  # about 122 MB to decode
    for i in range(3):
        draw_sample(7_000 + i)[0].save(docs / f"s{i}.png")
    settings = Settings.from_env({"WEIGHTS_DOWNLOAD": "false", "DECODE_BUDGET_MB": str(budget_mb)},
                                 model_root=str(model_root), model_dir=str(tmp_path / "state"), device="cpu",
                                 runtime="torch", local_files_document_root=str(docs), model_score_threshold=0.01)
    backend = build_backend(settings, start=False)
    backend.store.start(background=False)
    return backend, create_app(backend).test_client()


def predict(client: Any, names: list[str]) -> Any:
    tasks = [{"id": i, "data": {"image": f"/data/local-files/?d={name}"}} for i, name in enumerate(names)]
    return client.post("/predict", json={"tasks": tasks, "label_config": CONFIG})


def test_an_image_over_the_whole_budget_gets_its_error_and_the_others_their_results(
        tmp_path: Path, model_root: Path) -> None:
    backend, client = service(tmp_path, model_root, budget_mb=64)
    answer = predict(client, ["s0.png", "big.png", "s1.png"])
    assert answer.status_code == 200
    results = answer.get_json()["results"]
    assert results[0]["result"] and results[2]["result"] and results[1] == [], results  # [] : nothing stored
    assert backend.metrics.tasks.labels("failed")._value.get() == 1

    alone = predict(client, ["big.png"])
    assert alone.status_code == 422, alone.get_json()
    assert "needs about 122 MB to decode, more than DECODE_BUDGET_MB=64" in alone.get_json()["message"]
    assert backend.media.budget.held == 0 and predict(client, ["s2.png"]).status_code == 200


def test_concurrent_requests_wait_for_the_budget_and_all_complete(tmp_path: Path, model_root: Path) -> None:
    backend, client = service(tmp_path, model_root, budget_mb=200)  # one big image decoding at a time
    answers: list[Any] = []

    def one() -> None:
        answers.append(predict(client, ["big.png", "s0.png", "big.png"]))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200, 200, 200], [a.get_json() for a in answers]
    assert all(a.get_json()["results"][1]["result"] for a in answers)  # the small image was predicted
    budget = backend.media.budget
    assert budget.held == 0 and 0 < budget.peak <= budget.limit, (budget.held, budget.peak)
    assert backend.metrics.tasks.labels("failed")._value.get() == 0


def test_decoding_still_gives_upright_bgr_pixels(tmp_path: Path) -> None:
    from yolo_backend.media.decode_budget import DecodeBudget
    from yolo_backend.media.fetcher import decode

    Image.new("RGB", (30, 20), (10, 20, 30)).save(tmp_path / "c.png")
    budget = DecodeBudget(2**20)
    claimant = budget.claimant()
    image = decode(tmp_path / "c.png", 10**6, lambda w, h, mode: claimant.reserve(0, w * h * 8, "c"))
    assert image.pixels.shape == (20, 30, 3) and tuple(image.pixels[0, 0]) == (30, 20, 10)
    assert budget.held == image.pixels.nbytes
    image.release()
    assert budget.held == 0
