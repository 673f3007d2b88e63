"""No secret reaches the logs at any level, and webhook bodies cannot steer files, models or paths.

The log test runs the production server (gunicorn, LOG_LEVEL=DEBUG, access log on)
against a fake Label Studio that demands the token, through a scenario touching every
place a secret travels: the API key (legacy and personal access token, plus the
access token it is exchanged for), basic auth (right and wrong password), a token in
an image URL's query, failing downloads, and a training run's data fetch.
"""

from __future__ import annotations

import base64
import http.server
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.backend_server import start_backend
from tests.support.live_app import LiveApp
from tests.support.standin import CAR_CONFIG, png_bytes

LEGACY = "5ec4e7f00d5ec4e7f00d5ec4e7f00d5ec4e7f00d"
PAT = ("eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCIsImV4cCI6NDEwMjQ0NDgwMH0."
       "UEFULXNpZ25hdHVyZS1zZWNyZXQtdmFsdWU")
ACCESS = ("eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjo0MTAyNDQ0ODAwfQ."
          "QUNDRVNTLXNpZ25hdHVyZS1zZWNyZXQ")
BASIC_PASS = "b4sic-Pass-s3cret"
WRONG_PASS = "wr0ng-Pass-s3cret"
URL_TOKEN = "urlT0kenS3cretValue"
CONFIG = CAR_CONFIG


def png() -> bytes:
    return png_bytes((64, 48))


class FakeLabelStudio(http.server.BaseHTTPRequestHandler):
    """Answers token refresh, serves uploads to the right token only; everything else 404 or 401."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/api/token/refresh/" and body.get("refresh") == PAT:
            return self._send(200, json.dumps({"access": ACCESS}).encode())
        return self._send(401, b'{"detail": "bad token"}')

    def do_GET(self) -> None:
        if self.headers.get("Authorization") not in (f"Token {LEGACY}", f"Bearer {ACCESS}"):
            return self._send(401, b'{"detail": "Authentication credentials were not provided."}')
        if self.path.startswith("/data/upload/"):
            return self._send(200, png())
        return self._send(404, b'{"detail": "not found"}')

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def fake_label_studio():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeLabelStudio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def scenario(url: str) -> None:
    """Every request kind, with secrets in the places they travel."""
    auth = ("ann", BASIC_PASS)
    tasks = [{"id": 1, "data": {"image": "/data/upload/1/a.png"}},
             {"id": 2, "data": {"image": f"/data/upload/1/b.png?token={URL_TOKEN}"}},
             {"id": 3, "data": {"image": f"http://127.0.0.1:9/img.png?token={URL_TOKEN}&sig={URL_TOKEN}"}},
             {"id": 4, "data": {"image": "s3://bucket/c.png"}},
             {"id": 5, "data": {"image": f"/data/missing/{URL_TOKEN}.png"}}]
    requests.get(f"{url}/health?token={URL_TOKEN}", timeout=10)
    assert requests.post(f"{url}/setup", auth=auth, timeout=10,
                         json={"project": "1.1", "schema": CONFIG, "access_token": LEGACY}).status_code == 200
    answer = requests.post(f"{url}/predict", auth=auth, timeout=60, json={"tasks": tasks, "label_config": CONFIG,
                                                                          "project": "1.1"})
    assert answer.status_code == 200, answer.text
    one = requests.post(f"{url}/predict", auth=auth, timeout=60, json={"tasks": tasks[2:3], "label_config": CONFIG})
    assert one.status_code == 422 and URL_TOKEN not in one.text
    assert requests.post(f"{url}/predict", auth=("ann", WRONG_PASS), timeout=10, json={}).status_code == 401
    requests.post(f"{url}/webhook", timeout=10, json={"action": "START_TRAINING", "project": {"id": 1},
                                                       "token": LEGACY, "access_token": PAT})
    requests.get(f"{url}/training/status?project=1", auth=auth, timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("api_key", [LEGACY, PAT], ids=["legacy-token", "personal-access-token"])
def test_no_secret_in_debug_logs(tmp_path: Path, random_model_root: Path, fake_label_studio: str,
                                 api_key: str) -> None:
    env = {"MODEL_ROOT": str(random_model_root), "MODEL_PATH": "yolov5nu.pt", "IMGSZ": "160", "LOG_LEVEL": "DEBUG",
           "LABEL_STUDIO_URL": fake_label_studio, "LABEL_STUDIO_API_KEY": api_key, "BASIC_AUTH_USER": "ann",
           "BASIC_AUTH_PASS": BASIC_PASS, "MEDIA_ALLOWED_HOSTS": "127.0.0.1:9", "TRAIN_MIN_IMAGES": "2",
           "RUNTIME": "torch", "HTTP_TIMEOUT": "3"}
    server = start_backend(tmp_path, env)
    try:
        scenario(server.url)
        time.sleep(8)  # the training child fetches its data from the fake Label Studio and fails: its logs count too
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    assert "GET /health" in log and "POST /predict" in log, "the access log must be on at DEBUG"
    assert "task 3" in log, "failed downloads are logged (without their secrets)"
    basic = base64.b64encode(f"ann:{BASIC_PASS}".encode()).decode()
    for secret in (LEGACY, PAT, ACCESS, BASIC_PASS, WRONG_PASS, URL_TOKEN, basic, PAT.split(".")[2],
                   ACCESS.split(".")[2]):
        assert secret not in log, f"secret {secret[:6]}... found in the log:\n" + "\n".join(
            line for line in log.splitlines() if secret in line)[:2000]


def test_webhook_bodies_cannot_read_files_load_models_or_choose_paths(tmp_path: Path) -> None:
    """Paths everywhere in START_TRAINING bodies: no file under them is opened, no model loaded, no path kept."""
    bait = tmp_path / "bait"
    bait.mkdir()
    (bait / "weights.pt").write_bytes(b"not weights")
    (bait / "secret.txt").write_text("secret")
    live = LiveApp(tmp_path / "app")
    opened: list[str] = []
    watching = threading.Event()

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if watching.is_set() and event in ("open", "os.listdir", "os.scandir", "shutil.copyfile") and args:
            opened.append(str(args[0]))

    sys.addaudithook(audit)
    versions_before = live.backend.store.versions()
    paths = {"model_path": str(bait / "weights.pt"), "path": str(bait / "secret.txt"), "model_dir": str(bait),
             "data": {"image": str(bait / "secret.txt")}, "label_config": f'<View model_path="{bait}/weights.pt"/>'}
    bodies = [
        {"action": "START_TRAINING", "project": {"id": 1, **paths}, **paths},
        {"action": "ANNOTATION_CREATED", "project": {"id": 1, **paths}, "annotation": paths, "task": paths},
        {"action": "START_TRAINING", "project": {"id": f"1/../../{bait.name}"}},
        {"action": "START_TRAINING", "project": str(bait / "weights.pt")},
    ]
    watching.set()
    try:
        answers = [requests.post(f"{live.url}/webhook", json=body, timeout=5) for body in bodies]
    finally:
        watching.clear()
        live.close()
    assert [a.status_code for a in answers] == [200, 200, 400, 400]
    assert not [p for p in opened if str(bait) in p], opened
    assert live.backend.store.versions() == versions_before, "no model may be loaded by a webhook"
    assert live.runner.submitted and all(p == "1" for p, _ in live.runner.submitted)
    assert not list((tmp_path / "app" / "state").rglob("*bait*"))


def test_repeated_triggers_start_one_run_per_project(tmp_path: Path) -> None:
    live = LiveApp(tmp_path)
    try:
        def trigger(project: int) -> None:
            requests.post(f"{live.url}/webhook", json={"action": "START_TRAINING", "project": {"id": project}},
                          timeout=10)

        threads = [threading.Thread(target=trigger, args=(p,)) for p in [1] * 15 + [2] * 5]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        projects = sorted(p for p, _ in live.runner.submitted)
    finally:
        live.close()
    assert projects == ["1", "2"], projects
