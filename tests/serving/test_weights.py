"""First start: a published checkpoint missing from MODEL_ROOT is fetched once, checked, then served.

The release host is a loopback server (tests/support/release_host.py) serving a checkpoint
the tests build, under the published name ``yolov5nu.pt``; Ultralytics' own download code
fetches it, as it would from github.com.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.release_host import ReleaseHost
from yolo_backend.config import Settings

CONFIG = """<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">
<Label value="square"/><Label value="circle"/></RectangleLabels></View>"""


NEVER_SERVED = hashlib.sha256(b"no file is served here").hexdigest()


def service(tmp_path: Path, host: ReleaseHost | None, **overrides: Any) -> tuple[Any, Any]:
    """A backend fetching from the loopback host: plain http allowed, WEIGHTS_SHA256 given per test."""
    from yolo_backend.app import build_backend
    from yolo_backend.web.http_api import create_app

    docs = tmp_path / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env({"WEIGHTS_DOWNLOAD": "true", "WEIGHTS_URL_INSECURE": "true"}, **{
        "model_root": str(tmp_path / "models"), "model_dir": str(tmp_path / "state"), "device": "cpu",
        "runtime": "torch", "local_files_document_root": str(docs), "weights_sha256": NEVER_SERVED,
        "weights_url": host.url if host else "http://127.0.0.1:9/none", **overrides})
    backend = build_backend(settings, start=False)
    return backend, create_app(backend).test_client()


def until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def shapes_bytes() -> bytes:
    from tests.support.trained_model import trained_shapes_model

    return trained_shapes_model().read_bytes()


@pytest.mark.slow
def test_first_start_fetches_the_published_checkpoint_says_downloading_then_predicts_with_it(
        tmp_path: Path, shapes_bytes: bytes) -> None:
    from tests.support.synthetic import draw_sample
    from tests.support.trained_model import RECIPE

    host = ReleaseHost({"yolov5nu.pt": shapes_bytes})
    host.gate.clear()  # hold the download: the service must answer meanwhile
    try:
        digest = hashlib.sha256(shapes_bytes).hexdigest()
        backend, client = service(tmp_path, host, imgsz=str(RECIPE["imgsz"]), weights_sha256=digest)
        backend.store.start(background=True)
        until(lambda: host.requests)
        health = client.get("/health").get_json()
        assert health["model_state"] == "downloading" and "yolov5nu.pt" in health["message"], health
        setup = client.post("/setup", json={"project": "1.1", "schema": CONFIG}).get_json()
        assert setup["model_version"] == "untrained"
        host.gate.set()
        until(lambda: client.get("/health").get_json()["model_state"] == "ready")
        fetched = tmp_path / "models" / "yolov5nu.pt"
        assert fetched.read_bytes() == shapes_bytes and not list(fetched.parent.glob(".*part*"))

        img, shapes = draw_sample(900_123)
        img.save(tmp_path / "docs" / "s.png")
        answer = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=s.png"}}],
                                               "label_config": CONFIG, "project": "1.1"}).get_json()
        prediction = answer["results"][0]
        assert prediction["model_version"].startswith("yolov5nu-") and prediction["result"], answer
        assert {r["value"]["rectanglelabels"][0] for r in prediction["result"]} <= {s.label for s in shapes}
        assert len(host.requests) == 1

        # a restart: the file is there
        again, _ = service(tmp_path, host, imgsz=str(RECIPE["imgsz"]), weights_sha256=digest)
        again.store.start(background=False)
        assert again.store.state.value == "ready" and len(host.requests) == 1
    finally:
        host.close()


@pytest.mark.parametrize("mode, message", [("truncated", "could not download yolov5nu.pt"),
                                           ("corrupt", "not a usable checkpoint"),
                                           ("missing", "could not download yolov5nu.pt")])
def test_a_truncated_corrupt_or_missing_download_is_removed_reported_and_the_service_serves(
        tmp_path: Path, mode: str, message: str) -> None:
    from ultralytics import YOLO

    (tmp_path / "build").mkdir()
    YOLO("yolov5nu.yaml").save(str(tmp_path / "build" / "yolov5nu.pt"))
    built = (tmp_path / "build" / "yolov5nu.pt").read_bytes()
    files = {} if mode == "missing" else {"yolov5nu.pt": built}
    host = ReleaseHost(files, {"yolov5nu.pt": mode})
    try:
        backend, client = service(tmp_path, host, weights_sha256=hashlib.sha256(built).hexdigest())
        backend.store.start(background=False)
        health = client.get("/health").get_json()
        print(f"\n[weights {mode}] {health['message']}")
        assert health["model_state"] == "no_weights" and message in health["message"], health
        assert f"put yolov5nu.pt at {tmp_path / 'models' / 'yolov5nu.pt'}" in health["message"]
        assert not [p for p in (tmp_path / "models").iterdir()], "nothing half-written is left to load"
        Image.new("RGB", (64, 48), "white").save(tmp_path / "docs" / "w.png")
        answer = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=w.png"}}],
                                               "label_config": CONFIG})
        assert answer.status_code == 200
        [prediction] = answer.get_json()["results"]
        assert (prediction["result"], prediction["model_version"]) == ([], "untrained")
    finally:
        host.close()


def test_offline_or_turned_off_says_what_to_put_where_and_other_names_are_never_fetched(tmp_path: Path) -> None:
    host = ReleaseHost({})
    try:
        off, client = service(tmp_path, host, weights_download=False)
        off.store.start(background=False)
        message = client.get("/health").get_json()["message"]
        assert "WEIGHTS_DOWNLOAD is off: put yolov5nu.pt there" in message and f"{host.url}/yolov5nu.pt" in message
        mine, client = service(tmp_path / "b", host, model_path="receipts.pt")  # not a published name
        mine.store.start(background=False)
        assert client.get("/health").get_json()["model_state"] == "no_weights"
        assert host.requests == []  # only published names are ever asked for

        unreachable, client = service(tmp_path / "c", None)  # offline: nothing listens there
        unreachable.store.start(background=False)
        health = client.get("/health").get_json()
        assert health["model_state"] == "no_weights" and "could not download yolov5nu.pt from 127.0.0.1:9" in \
            health["message"] and "\n" not in health["message"]
    finally:
        host.close()


def test_the_default_weights_url_is_the_release_ultralytics_itself_downloads_from() -> None:
    from ultralytics.utils.downloads import attempt_download_asset

    release = inspect.signature(attempt_download_asset).parameters["release"].default
    default = next(v.default for v in __import__("yolo_backend.config").config.SETTINGS if v.env == "WEIGHTS_URL")
    assert default == f"https://github.com/ultralytics/assets/releases/download/{release}"


def test_the_build_time_command_fetches_model_path_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    """What the Dockerfile runs: ``python -m yolo_backend.serving.weights`` puts MODEL_PATH into MODEL_ROOT."""
    from ultralytics import YOLO

    from yolo_backend.serving import weights

    YOLO("yolov5nu.yaml").save(str(tmp_path / "built.pt"))
    host = ReleaseHost({"yolo11n.pt": (tmp_path / "built.pt").read_bytes()})
    try:
        monkeypatch.setenv("MODEL_ROOT", str(tmp_path / "models"))
        monkeypatch.setenv("WEIGHTS_URL", host.url)
        monkeypatch.setenv("MODEL_PATH", "yolo11n.pt")
        monkeypatch.setenv("WEIGHTS_URL_INSECURE", "true")
        monkeypatch.setenv("WEIGHTS_SHA256", hashlib.sha256((tmp_path / "built.pt").read_bytes()).hexdigest())
        assert weights.main([]) == 0 and (tmp_path / "models" / "yolo11n.pt").is_file()
        assert weights.main([]) == 0 and "is there" in capsys.readouterr().out and len(host.requests) == 1
        assert weights.main(["receipts.pt"]) == 2  # not published: nothing to fetch
        assert weights.main(["yolov8n.pt"]) == 1 and "could not download yolov8n.pt" in capsys.readouterr().err
    finally:
        host.close()


@pytest.fixture()
def built_checkpoint(tmp_path: Path) -> bytes:
    from ultralytics import YOLO

    (tmp_path / "build").mkdir(exist_ok=True)
    YOLO("yolov5nu.yaml").save(str(tmp_path / "build" / "yolov5nu.pt"))
    return (tmp_path / "build" / "yolov5nu.pt").read_bytes()


def health_after_start(tmp_path: Path, host: ReleaseHost, **overrides: Any) -> tuple[dict, Any]:
    backend, client = service(tmp_path, host, **overrides)
    backend.store.start(background=False)
    return client.get("/health").get_json(), client


def test_a_download_with_another_sha256_is_removed_reported_and_the_service_serves(
        tmp_path: Path, built_checkpoint: bytes) -> None:
    host = ReleaseHost({"yolov5nu.pt": built_checkpoint})
    try:
        health, client = health_after_start(tmp_path, host)  # WEIGHTS_SHA256 names another file
        assert health["model_state"] == "no_weights", health
        assert f"has sha256 {hashlib.sha256(built_checkpoint).hexdigest()}, not the expected {NEVER_SERVED}" in \
            health["message"] and "\n" not in health["message"]
        assert not list((tmp_path / "models").iterdir()), "nothing of the refused file is left"
        Image.new("RGB", (64, 48), "white").save(tmp_path / "docs" / "w.png")
        answer = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=w.png"}}],
                                               "label_config": CONFIG})
        assert answer.status_code == 200 and answer.get_json()["results"][0]["model_version"] == "untrained"

        matching = hashlib.sha256(built_checkpoint).hexdigest()
        health, _ = health_after_start(tmp_path / "b", host, weights_sha256=matching)
        assert health["model_state"] == "ready", health  # the matching WEIGHTS_SHA256 is accepted
        assert (tmp_path / "b" / "models" / "yolov5nu.pt").read_bytes() == built_checkpoint
    finally:
        host.close()


def test_a_published_name_is_checked_against_its_pinned_sha256(tmp_path: Path, built_checkpoint: bytes) -> None:
    from yolo_backend.serving.weights import PUBLISHED_SHA256

    host = ReleaseHost({"yolo11n.pt": built_checkpoint})  # a stand-in, not the real yolo11n.pt
    try:
        health, _ = health_after_start(tmp_path, host, model_path="yolo11n.pt", weights_sha256="")
        assert health["model_state"] == "no_weights", health
        assert f"not the expected {PUBLISHED_SHA256['yolo11n.pt']}" in health["message"], health
        assert not list((tmp_path / "models").iterdir())
    finally:
        host.close()


def test_plain_http_is_refused_unless_weights_url_insecure(tmp_path: Path, built_checkpoint: bytes) -> None:
    host = ReleaseHost({"yolov5nu.pt": built_checkpoint})
    digest = hashlib.sha256(built_checkpoint).hexdigest()
    try:
        health, _ = health_after_start(tmp_path, host, weights_url_insecure=False, weights_sha256=digest)
        assert health["model_state"] == "no_weights", health
        assert f"WEIGHTS_URL {host.url} is not https" in health["message"] and \
            "WEIGHTS_URL_INSECURE=true" in health["message"]
        assert host.requests == [] and not list((tmp_path / "models").glob("*"))

        health, _ = health_after_start(tmp_path / "b", host, weights_url_insecure=True, weights_sha256=digest)
        assert health["model_state"] == "ready" and len(host.requests) == 1, health
    finally:
        host.close()


def test_a_published_name_with_no_known_sha256_is_not_fetched_without_weights_sha256(tmp_path: Path) -> None:
    host = ReleaseHost({"yolov8n-obb.pt": b"x" * 200_000})
    try:
        health, _ = health_after_start(tmp_path, host, model_path="yolov8n-obb.pt", weights_sha256="")
        assert health["model_state"] == "no_weights", health
        assert health["message"].startswith("yolov8n-obb.pt has no known sha256, so it was not fetched: set "
                                             "WEIGHTS_SHA256") and "or put yolov8n-obb.pt in MODEL_ROOT" in \
            health["message"], health
        assert host.requests == []
    finally:
        host.close()


def test_pinned_names_are_published_and_weights_sha256_must_be_a_digest() -> None:
    from yolo_backend.serving.weights import PUBLISHED_SHA256, published

    assert all(published(name) and len(digest) == 64 for name, digest in PUBLISHED_SHA256.items())
    with pytest.raises(ValueError, match="WEIGHTS_SHA256='abc'"):
        Settings.from_env({"WEIGHTS_SHA256": "abc"})


def test_the_assist_model_is_fetched_with_its_own_sha256_or_refused_saying_so(tmp_path: Path) -> None:
    import torch
    from ultralytics.models.sam.build import build_mobile_sam

    from yolo_backend.assist import Assistant

    build = tmp_path / "build"
    build.mkdir()
    torch.save(build_mobile_sam(None).state_dict(), build / "mobile_sam.pt")  # Ultralytics' network, random weights
    sam = (build / "mobile_sam.pt").read_bytes()
    host = ReleaseHost({"mobile_sam.pt": sam})
    try:
        backend, _ = service(tmp_path / "a", host, assist_model="mobile_sam.pt")  # no ASSIST_SHA256: not fetched
        assistant = Assistant(backend)
        assert assistant._load() is None and host.requests == []
        assert assistant.status()["state"] == "error" and "set ASSIST_SHA256" in assistant.status()["message"]

        backend, _ = service(tmp_path / "b", host, assist_model="mobile_sam.pt",
                             assist_sha256=hashlib.sha256(sam).hexdigest())
        assistant = Assistant(backend)
        assert assistant._load() is not None and assistant.status()["state"] == "ready"
        assert (tmp_path / "b" / "models" / "mobile_sam.pt").read_bytes() == sam and len(host.requests) == 1
    finally:
        host.close()
