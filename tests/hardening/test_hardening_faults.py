"""Faults around the service: Label Studio failing, a worker killed, a full disk, Redis gone.

Each test is one row of the faults table in docs/hardening.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
from PIL import Image

from tests.support.backend_server import start_backend
from tests.support.hostile_server import HostileServer
from tests.support.live_app import LiveApp
from tests.support.standin import CAR_CONFIG, png_bytes
from tests.training.test_training_runs import wait_for
from yolo_backend.config import Settings
from yolo_backend.errors import MediaError
from yolo_backend.labelstudio.ls_auth import LabelStudioAuth
from yolo_backend.media.fetcher import DiskCache, MediaFetcher

TOKEN = "0123456789abcdef0123456789abcdef01234567"
CONFIG = CAR_CONFIG


def png() -> bytes:
    return png_bytes((8, 6))


def fetcher(tmp_path: Path, base_url: str, timeout: float = 2) -> MediaFetcher:
    return MediaFetcher(LabelStudioAuth(base_url, TOKEN), DiskCache(tmp_path / "cache", 2**20), timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_answers(port: int) -> bool:
    """Whether something accepts connections on ``port`` (redis-server, once it started)."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- Label Studio failing while images download ------------------------------------
def test_label_studio_5xx_is_retried_with_backoff(tmp_path: Path) -> None:
    with HostileServer({"a.png": png()}, fail_first=2) as label_studio:
        started = time.monotonic()
        image = fetcher(tmp_path, label_studio.url).load("/data/upload/flaky/a.png")
        assert image.width == 8 and len(label_studio.requests) == 3
        assert time.monotonic() - started >= 2.0, "backoff of 0.5 s then 1.5 s between the tries"


@pytest.mark.parametrize("path, words, tries", [("/data/upload/status/500", "HTTP 500", 1),
                                                ("/data/upload/status/503", "HTTP 503", 3),
                                                ("/data/upload/status/401", "401.*LABEL_STUDIO_API_KEY", 2),
                                                ("/data/upload/hang", ": ReadTimeout$", 1)])
def test_label_studio_errors_give_a_clear_reason_and_leave_no_partial_file(tmp_path: Path, path: str,
                                                                          words: str, tries: int) -> None:
    """It gives up: bounded tries (503 retried twice, 401 once with a fresh token), a read timeout for a hang."""
    with HostileServer() as label_studio:
        with pytest.raises(MediaError, match=words):
            fetcher(tmp_path, label_studio.url, timeout=1).load(path)
        assert len(label_studio.requests) == tries, label_studio.requests
    assert not list((tmp_path / "cache").iterdir()), "nothing half-written in the cache"


def test_label_studio_unreachable_during_predict_answers_with_the_reason(tmp_path: Path) -> None:
    live = LiveApp(tmp_path, label_studio_url=f"http://127.0.0.1:{free_port()}")
    try:
        task = {"id": 1, "data": {"image": "/data/upload/1/a.png"}}
        answer = requests.post(f"{live.url}/predict", json={"tasks": [task], "label_config": CONFIG}, timeout=20)
        assert answer.status_code == 422 and "could not download" in answer.json()["message"]
        assert requests.get(f"{live.url}/health", timeout=60).status_code == 200
    finally:
        live.close()


@pytest.mark.parametrize("path", ["/status/500", "/status/401", "/hang", None])
def test_training_data_fetch_failure_marks_the_run_failed_with_the_reason(tmp_path: Path, path: str | None) -> None:
    from yolo_backend.core.registry import Registry
    from yolo_backend.core.state import RunRecord
    from yolo_backend.training.train import run_once

    with HostileServer() as server:
        url = f"{server.url}{path}" if path else f"http://127.0.0.1:{free_port()}"
        settings = Settings.from_env({}, model_dir=str(tmp_path / "state"), label_studio_url=url,
                                     label_studio_api_key=TOKEN, http_timeout=1.0)
        run = run_once(settings, "5", RunRecord("5"))
    assert run.state.value == "failed" and run.reason
    assert Registry(settings.model_dir_path, "5").served() is None
    leftovers = [p for p in (tmp_path / "state").rglob("*") if p.is_file() and p.suffix in (".pt", ".part", ".tmp")]
    assert not leftovers


# -- a web worker killed with a /predict in flight --------------------------------
@pytest.mark.slow
def test_kill_9_of_a_worker_mid_predict_the_worker_comes_back(tmp_path: Path, random_model_root: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    Image.new("RGB", (64, 48), "red").save(docs / "a.png")
    with HostileServer() as slow:
        server = start_backend(tmp_path, {"MODEL_ROOT": str(random_model_root), "MODEL_PATH": "yolov5nu.pt",
                                          "IMGSZ": "160", "RUNTIME": "torch", "LOCAL_FILES_DOCUMENT_ROOT": str(docs),
                                          "MEDIA_ALLOWED_HOSTS": slow.host_port, "HTTP_TIMEOUT": "20"})
        try:
            master = psutil.Process(server.process.pid)
            [worker] = master.children()
            in_flight: list[object] = []
            task = {"id": 1, "data": {"image": f"{slow.url}/slow"}}

            def stuck_predict() -> None:
                try:
                    in_flight.append(requests.post(f"{server.url}/predict", timeout=60,
                                                   json={"tasks": [task], "label_config": CONFIG}))
                except requests.RequestException as exc:
                    in_flight.append(exc)

            thread = threading.Thread(target=stuck_predict)
            thread.start()
            deadline = time.monotonic() + 10
            while not slow.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert slow.requests, "the /predict must be in flight (fetching its image) before the kill"
            os.kill(worker.pid, signal.SIGKILL)
            thread.join(30)
            assert in_flight and not getattr(in_flight[0], "ok", False), "the in-flight request fails, visibly"
            ready = time.monotonic() + 120
            while time.monotonic() < ready:
                try:
                    if server.health()["model_state"] == "ready":
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.5)
            [new_worker] = master.children()
            assert new_worker.pid != worker.pid
            good = {"id": 2, "data": {"image": "/data/local-files/?d=a.png"}}
            answer = requests.post(f"{server.url}/predict", json={"tasks": [good], "label_config": CONFIG}, timeout=60)
            assert answer.status_code == 200 and len(answer.json()["results"]) == 1
        finally:
            server.stop()


# -- MODEL_DIR full while a checkpoint is saved ------------------------------------
@pytest.fixture()
def small_filesystem(tmp_path: Path):
    """A 3 MB tmpfs: room for the dataset and status files, not for a checkpoint (yolov5nu is ~5 MB)."""
    mount = tmp_path / "small-fs"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_model_dir_full_while_saving_fails_the_run_and_keeps_the_served_model(
        tmp_path: Path, random_model_root: Path, small_filesystem: Path) -> None:
    from tests.support.shapes_project import export_file, write_project
    from yolo_backend.core.registry import Registry
    from yolo_backend.core.state import RunRecord
    from yolo_backend.training.train import run_once

    root = tmp_path / "root"
    shutil.copytree(random_model_root, root)
    base_hash = hashlib.sha256((root / "yolov5nu.pt").read_bytes()).hexdigest()
    source = export_file(tmp_path / "export.json", write_project(tmp_path / "docroot", 12, size=(96, 96),
                                                                 max_shapes=1))
    settings = Settings.from_env({}, model_root=str(root), model_path="yolov5nu.pt", model_dir=str(small_filesystem),
                                 local_files_document_root=str(tmp_path / "docroot"), device="cpu", train_imgsz=64,
                                 train_epochs=1, train_batch=4, train_min_images=10, train_patience=50)
    run = run_once(settings, "9", RunRecord("9"), source)
    assert run.state.value == "failed", run
    assert "space" in run.reason.lower() or "errno 28" in run.reason.lower(), run.reason
    assert Registry(settings.model_dir_path, "9").served() is None, "no half-written version may be served"
    assert hashlib.sha256((root / "yolov5nu.pt").read_bytes()).hexdigest() == base_hash


# -- Redis stopped in queue mode ---------------------------------------------------
@pytest.mark.redis
def test_webhook_answers_failed_after_redis_stops(tmp_path: Path) -> None:
    """The trigger is answered (failed, with the reason, recorded in the status) instead of hanging on Redis.

    The request timeouts are give-up limits only; how fast it answers is not bounded here (a loaded machine)."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required in CI (apt-get install redis-server)")
        pytest.skip("redis-server not installed")
    port = free_port()
    redis = subprocess.Popen([redis_server, "--port", str(port), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    live = None
    try:
        wait_for(lambda: redis_answers(port), "redis-server to accept connections", timeout=60)
        live = LiveApp(tmp_path, real_runner=True, redis_url=f"redis://127.0.0.1:{port}/0", admin_open=True)
        first = requests.post(f"{live.url}/webhook", json={"action": "START_TRAINING", "project": {"id": 3}},
                              timeout=5)
        assert first.json()["status"] == "queued"
        redis.kill()
        redis.wait()
        answer = requests.post(f"{live.url}/webhook", json={"action": "START_TRAINING", "project": {"id": 4}},
                               timeout=60)
        assert answer.status_code == 200 and answer.json()["status"] == "failed"
        assert "could not queue" in answer.json()["reason"]
        status = requests.get(f"{live.url}/training/status?project=4", timeout=5).json()
        assert status["last_run"]["state"] == "failed" and status["state"] == "idle"
        assert requests.get(f"{live.url}/health", timeout=60).status_code == 200
    finally:
        redis.kill()
        if live:
            live.close()
