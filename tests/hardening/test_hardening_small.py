"""Smaller hardening items: masked settings, a token refresh answered by a login page,
``yolo-ls --allowed-hosts``, and inference threads shared out among WORKERS.

Each test is a row of docs/hardening.md ("Smaller items").
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import typing
from pathlib import Path

import pytest
import requests

from tests.support.image_server import ImageServer
from tests.support.live_app import LiveApp
from tests.support.quiet_handler import QuietHandler
from tests.support.standin import CAR_CONFIG, png_bytes
from yolo_backend.cli import build_parser, main
from yolo_backend.config import Settings
from yolo_backend.errors import LabelStudioUnavailable
from yolo_backend.labelstudio.ls_auth import LabelStudioAuth
from yolo_backend.media.fetcher import DiskCache, MediaFetcher

ROOT = Path(__file__).resolve().parents[2]
PAT = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJlLW9mLXRoZS1wYXQ"


# -- Settings never print a secret ---------------------------------------------------------
def secret_settings() -> tuple[Settings, list[str]]:
    """Settings with a distinct secret in every secret-named field and in URL passwords."""
    types = typing.get_type_hints(Settings)  # a field's type, its Annotated default and why stripped
    values = {f.name: f"s3cr3t-{f.name}-value" for f in dataclasses.fields(Settings)
              if types[f.name] is str and any(w in f.name for w in ("key", "pass", "secret", "token"))}
    values.update(basic_auth_user="ann", redis_url="redis://:redis-pw-s3cr3t@cache:6379/0",
                  label_studio_url="https://robot:ls-pw-s3cr3t@ls.example:8443")
    assert {"label_studio_api_key", "basic_auth_pass"} <= set(values)
    secrets = [v for k, v in values.items() if "s3cr3t" in v and "://" not in v]
    return Settings.from_env({}, **values), [*secrets, "redis-pw-s3cr3t", "ls-pw-s3cr3t", "robot:"]


def test_settings_repr_and_str_mask_every_secret() -> None:
    settings, secrets = secret_settings()
    logged = logging.LogRecord("x", logging.INFO, "", 0, "settings %s %r", (settings, settings), None).getMessage()
    for text in (repr(settings), str(settings), f"{settings}", logged):
        for secret in secrets:
            assert secret not in text, f"{secret} printed"
    text = repr(settings)
    assert "basic_auth_user='ann'" in text and "label_studio_api_key='***'" in text
    assert "redis_url='redis://***@cache:6379/0'" in text and "https://***@ls.example:8443" in text
    assert "Settings(" in text and "model_root='./models'" in text


def test_unset_secrets_show_as_empty_and_asdict_keeps_real_values() -> None:
    assert "label_studio_api_key=''" in repr(Settings.from_env({}))
    settings, _ = secret_settings()
    data = dataclasses.asdict(settings)
    assert data["label_studio_api_key"] == "s3cr3t-label_studio_api_key-value"
    assert data["redis_url"] == "redis://:redis-pw-s3cr3t@cache:6379/0"
    assert Settings(**json.loads(json.dumps(data))) == settings, "the training runner's JSON round trip"


# -- a token refresh answered by a proxy's login page -----------------------------------------
class _RefreshHandler(QuietHandler):
    server: _RefreshServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(200, self.server.body, {"Content-Type": self.server.content_type})

    def do_GET(self) -> None:
        self.server.gets.append(self.path)
        self._send(401, b'{"detail": "no"}', {"Content-Type": "application/json"})



class _RefreshServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    body: bytes
    content_type: str
    gets: list[str]


@pytest.fixture()
def login_page_label_studio():
    """A "Label Studio" whose token refresh answers 200 with a proxy's HTML login page."""
    server = _RefreshServer(("127.0.0.1", 0), _RefreshHandler)
    server.body, server.content_type, server.gets = b"<html><form>Sign in</form></html>", "text/html", []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_login_page_for_the_token_refresh_is_a_clear_error(tmp_path: Path, login_page_label_studio) -> None:
    media = MediaFetcher(LabelStudioAuth(login_page_label_studio.url, PAT), DiskCache(tmp_path / "c", 2**20))
    with pytest.raises(LabelStudioUnavailable, match=r"not JSON \(text/html\): a proxy or login page\?"):
        media.load("/data/upload/1/a.png")
    assert login_page_label_studio.gets == [], "no image request without a token"


@pytest.mark.parametrize("body, words", [(b"[]", "without an access token"), (b'{"access": 5}', "without an access"),
                                         (b'{"detail": "x"}', "without an access token")])
def test_a_refresh_answer_without_an_access_token_is_a_clear_error(login_page_label_studio, body: bytes,
                                                                   words: str) -> None:
    login_page_label_studio.body, login_page_label_studio.content_type = body, "application/json"
    with pytest.raises(LabelStudioUnavailable, match=words):
        LabelStudioAuth(login_page_label_studio.url, PAT).header()


def test_predict_answers_the_login_page_reason_not_500(tmp_path: Path, login_page_label_studio) -> None:
    live = LiveApp(tmp_path, label_studio_url=login_page_label_studio.url, label_studio_api_key=PAT)
    try:
        task = {"id": 1, "data": {"image": "/data/upload/1/a.png"}}
        answer = requests.post(f"{live.url}/predict", timeout=20, json={"tasks": [task], "label_config": CAR_CONFIG})
        # serving.backend._failed hands a task's non-media error on as a 422 media error, with its message
        assert answer.status_code == 422, answer.text
        assert "a proxy or login page?" in answer.json()["message"]
        two = requests.post(f"{live.url}/predict", timeout=20,
                            json={"tasks": [task, {**task, "id": 2}], "label_config": CAR_CONFIG})
        assert two.status_code == 200 and two.json()["results"] == [[], []]  # no prediction stored: tried again
    finally:
        live.close()


# -- yolo-ls --allowed-hosts ------------------------------------------------------------------
def export_file(path: Path, image_url: str) -> Path:
    region = {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
              "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["Car"]}}
    path.write_text(json.dumps([{"id": 1, "data": {"image": image_url}, "annotations": [{"result": [region]}]}]))
    return path


@pytest.fixture()
def lan_image_server(tmp_path: Path):
    """A private (loopback) image host that is not Label Studio, like MinIO or a LAN file server."""
    folder = tmp_path / "lan"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes((8, 6)))
    server = ImageServer(folder)
    yield server
    server.close()


def exported_images(out: Path) -> list[Path]:
    return sorted(p for p in (out / "images").rglob("*") if p.is_file()) if (out / "images").is_dir() else []


def test_export_yolo_reaches_a_private_host_only_with_allowed_hosts(tmp_path: Path, lan_image_server,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("MEDIA_ALLOWED_HOSTS", raising=False)
    source = export_file(tmp_path / "export.json", f"{lan_image_server.url}/a.png")
    host_port = lan_image_server.url.split("//")[1]
    common = ["export-yolo", "--from-file", str(source), "--url", "http://127.0.0.1:9", "--classes", "Car"]

    assert main([*common, "-o", str(tmp_path / "refused")]) == 0
    assert "MEDIA_ALLOWED_HOSTS" in capsys.readouterr().err and not exported_images(tmp_path / "refused")
    assert lan_image_server.requests == [], "refused before connecting"

    assert main([*common, "--allowed-hosts", host_port, "-o", str(tmp_path / "allowed")]) == 0
    assert len(exported_images(tmp_path / "allowed")) == 1
    assert "Authorization" not in lan_image_server.requests[0][1], "not Label Studio: no token"

    monkeypatch.setenv("MEDIA_ALLOWED_HOSTS", host_port)  # the option's default
    assert main([*common, "-o", str(tmp_path / "from-env")]) == 0
    assert len(exported_images(tmp_path / "from-env")) == 1


def test_prelabel_in_process_gets_allowed_hosts(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    """Without --backend the model and its image fetcher live in this process: they get --allowed-hosts."""
    from yolo_backend import app
    from yolo_backend.labelstudio import ls_client

    seen: list[str] = []

    def fake_backend(url: str, api_key: str, model_root: object, model_path: object) -> object:
        seen.append(Settings.from_env().media_allowed_hosts)  # what build_backend would get
        raise ValueError("stop here")

    monkeypatch.delenv("MEDIA_ALLOWED_HOSTS", raising=False)
    monkeypatch.setattr(ls_client, "connect", lambda url, key: object())
    monkeypatch.setattr(ls_client, "label_config", lambda client, project: CAR_CONFIG)
    monkeypatch.setattr(app, "in_process_backend", fake_backend)
    assert main(["prelabel", "--project", "1", "--api-key", "k", "--allowed-hosts", "minio.lan:9000"]) == 2
    assert seen == ["minio.lan:9000"] and "stop here" in capsys.readouterr().err
    assert "MEDIA_ALLOWED_HOSTS" not in os.environ, "put back after the backend is built"
    monkeypatch.setenv("MEDIA_ALLOWED_HOSTS", "10.0.0.0/8")
    assert build_parser().parse_args(["prelabel", "--project", "1"]).allowed_hosts == "10.0.0.0/8"


# -- inference threads shared out among WORKERS ---------------------------------------------
@pytest.mark.parametrize("requested, workers, cores, expected", [
    (0, 1, 2, 2), (0, 2, 2, 1), (0, 4, 2, 1), (0, 2, 16, 8), (0, 3, 16, 5), (0, 0, 4, 4),
    (3, 2, 16, 3), (1, 1, 16, 1), (8, 4, 2, 8),  # an explicit TORCH_THREADS wins, even past the share
])
def test_thread_share_arithmetic(requested: int, workers: int, cores: int, expected: int) -> None:
    from yolo_backend.serving.detector import inference_threads

    assert inference_threads(requested, workers, cores) == expected


@pytest.mark.parametrize("value, expected", [("2", 2), ("", 1), ("x", 1), ("0", 1), (None, 1)])
def test_workers_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int) -> None:
    from yolo_backend.serving.detector import workers_from_env

    if value is None:
        monkeypatch.delenv("WORKERS", raising=False)
    else:
        monkeypatch.setenv("WORKERS", value)
    assert workers_from_env() == expected


LOAD_AND_REPORT = """
import json, torch
from yolo_backend.app import build_backend
from yolo_backend.config import Settings
backend = build_backend(Settings.from_env(), start=False)
backend.store.start(background=False)
print(json.dumps({"state": backend.store.state.value, "threads": torch.get_num_threads()}))
"""


def threads_of_a_served_model(tmp_path: Path, model_root: Path, **env: str) -> int:
    environ = {**os.environ, "MODEL_ROOT": str(model_root), "MODEL_PATH": "yolov5nu.pt", "RUNTIME": "torch",
               "IMGSZ": "64", "MODEL_DIR": str(tmp_path / "state"), "YOLO_OFFLINE": "1", **env}
    done = subprocess.run([sys.executable, "-c", LOAD_AND_REPORT], capture_output=True, text=True, cwd=ROOT,
                          env=environ, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["state"] == "ready"
    return report["threads"]


def test_a_served_torch_model_takes_its_workers_share(tmp_path: Path, random_model_root: Path) -> None:
    from yolo_backend.serving.detector import available_cores

    cores = available_cores()
    if cores < 2:
        pytest.skip("one core: every share is 1")
    assert threads_of_a_served_model(tmp_path, random_model_root, WORKERS="2", TORCH_THREADS="0") == cores // 2
    assert threads_of_a_served_model(tmp_path, random_model_root, WORKERS="1", TORCH_THREADS="0") == cores
    assert threads_of_a_served_model(tmp_path, random_model_root, WORKERS="2", TORCH_THREADS="3") == 3


def engine_threads(detector: object, engine: str) -> int:
    backend = detector.model.predictor.model.backend  # type: ignore[attr-defined]
    if engine == "onnx":
        return backend.session.get_session_options().intra_op_num_threads
    return int(backend.ov_compiled_model.get_property("INFERENCE_NUM_THREADS"))


@pytest.mark.parametrize("engine", ["onnx", "openvino"])
def test_an_exported_engine_takes_its_workers_share(tmp_path: Path, random_model_root: Path, engine: str) -> None:
    """Ultralytics builds the engine session without a thread count; the served one gets the share."""
    from yolo_backend.serving import exports, runtime
    from yolo_backend.serving.detector import available_cores
    from yolo_backend.serving.loader import load_detector

    if not runtime.available(engine):
        pytest.skip(f"{engine} is not installed")
    checkpoint, cache_root, imgsz = random_model_root / "yolov5nu.pt", tmp_path / "runtime", 64
    folder = runtime.export_dir(cache_root, runtime.content_key(checkpoint), engine, imgsz)
    folder.mkdir(parents=True)
    exports.make_export(checkpoint, folder, engine, imgsz)
    exports.record_verdict(folder, engine, True, 10, "passed (written by the test)")
    # OpenVINO caps its count at the cores it sees, so the explicit case is ONNX Runtime's only
    cases = [(2, 0, max(1, available_cores() // 2))] + ([(2, 3, 3)] if engine == "onnx" else [])
    for workers, torch_threads, expected in cases:
        detector = load_detector(checkpoint, device="cpu", imgsz=imgsz, runtime=engine, cache_root=cache_root,
                                 prepare=False, workers=workers, torch_threads=torch_threads)
        assert detector.runtime == engine
        assert engine_threads(detector, engine) == expected
