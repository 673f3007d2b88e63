"""Trust III (issue 22): nothing open by default. Without basic auth the admin routes answer 401
unless ADMIN_OPEN=true; Label Studio's routes keep working without credentials; a listener
beyond loopback without basic auth is warned about once per start."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest
import requests
import yaml

from tests.support.backend_server import log_tail, start_backend
from tests.support.live_app import LiveApp
from yolo_backend.config import Settings
from yolo_backend.core.registry import Registry, run_files
from yolo_backend.web.exposure import exposure_warning, is_loopback

ROOT = Path(__file__).resolve().parents[2]
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
PNG = b"\x89PNG\r\n\x1a\n"


def _publish(model_dir: Path, project: str, run_id: str) -> str:
    """A promoted version as a run records it, with its kept results.png."""
    candidate = model_dir / f"{run_id}.pt"
    candidate.parent.mkdir(parents=True, exist_ok=True)
    candidate.write_bytes(b"weights")
    version = Registry(model_dir, project).publish(candidate, ["square"], {}, run_id, decision="better")
    kept = run_files(model_dir, project, run_id)
    kept.mkdir(parents=True, exist_ok=True)
    (kept / "results.png").write_bytes(PNG + b"chart")
    return version


def _admin_requests(app: LiveApp, auth: tuple[str, str] | None = None) -> dict[str, requests.Response]:
    """Every admin route once, against a project with two versions (so a rollback can succeed)."""
    url = app.url
    return {
        "/status": requests.get(f"{url}/status", auth=auth, timeout=5),
        "/ (browser)": requests.get(f"{url}/", headers=BROWSER, auth=auth, timeout=5),
        "/status/plot": requests.get(f"{url}/status/plot", params={"project": "5", "version": "p5-v1",
                                                                    "name": "results"}, auth=auth, timeout=5),
        "/training/status": requests.get(f"{url}/training/status", params={"project": "5"}, auth=auth, timeout=5),
        "/training/rollback": requests.post(f"{url}/training/rollback", json={"project": "5", "version": "p5-v1"},
                                            auth=auth, timeout=5),
        "/metrics": requests.get(f"{url}/metrics", auth=auth, timeout=5),
    }


@pytest.fixture
def admin_app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveApp]:
    app = LiveApp(tmp_path, **request.param)
    for run_id in ("20260101-000000-aaaaaa", "20260102-000000-bbbbbb"):
        _publish(app.settings.model_dir_path, "5", run_id)
    yield app
    app.close()


@pytest.mark.parametrize("admin_app", [{}], indirect=True)
def test_without_basic_auth_every_admin_route_is_401_naming_the_fix(admin_app: LiveApp) -> None:
    for route, answer in _admin_requests(admin_app).items():
        assert answer.status_code == 401, (route, answer.text)
        message = answer.json()["message"]
        assert "BASIC_AUTH_USER" in message and "ADMIN_OPEN=true" in message, route
        assert "WWW-Authenticate" not in answer.headers, route  # no credentials exist that a browser could give
    assert Registry(admin_app.settings.model_dir_path, "5").load()["served"] == "p5-v2", "a refused rollback ran"


@pytest.mark.parametrize("admin_app", [{"admin_open": True},
                                       {"basic_auth_user": "ann", "basic_auth_pass": "s3cret"}], indirect=True)
def test_admin_routes_answer_with_admin_open_or_with_basic_auth(admin_app: LiveApp) -> None:
    auth = ("ann", "s3cret") if admin_app.settings.basic_auth else None
    for route, answer in _admin_requests(admin_app, auth).items():
        assert answer.status_code == 200, (route, answer.text)
    assert Registry(admin_app.settings.model_dir_path, "5").load()["served"] == "p5-v1"


@pytest.mark.parametrize("admin_app", [{}], indirect=True)
def test_label_studio_routes_still_work_without_credentials(admin_app: LiveApp) -> None:
    from tests.support.standin import CAR_CONFIG

    url = admin_app.url
    assert requests.get(f"{url}/health", timeout=5).json()["status"] == "UP"
    assert requests.get(f"{url}/", timeout=5).json()["status"] == "UP"  # Label Studio's probe: Accept */*
    assert requests.post(f"{url}/setup", json={"project": "5.1700000000", "schema": CAR_CONFIG},
                         timeout=5).status_code == 200
    predicted = requests.post(f"{url}/predict", json={"tasks": [], "label_config": CAR_CONFIG, "project": "5"},
                              timeout=5)
    assert predicted.status_code == 200 and predicted.json()["results"] == []
    event = requests.post(f"{url}/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 5}}, timeout=5)
    assert event.status_code == 200 and "status" in event.json()


def test_the_start_warning_names_non_loopback_listeners_without_basic_auth() -> None:
    plain, open_admin = Settings.from_env({}), Settings.from_env({}, admin_open=True)
    guarded = Settings.from_env({}, basic_auth_user="ann", basic_auth_pass="s3cret")
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "", "192.168.1.4", "backend.example"))
    assert exposure_warning(["127.0.0.1", "::1"], plain) is None
    assert exposure_warning(["0.0.0.0"], guarded) is None
    warning = exposure_warning(["127.0.0.1", "0.0.0.0"], plain)
    assert warning and "0.0.0.0" in warning and "BASIC_AUTH_USER" in warning and "401" in warning
    assert "roll back" in (exposure_warning(["::"], open_admin) or "")


WARNING = "without BASIC_AUTH_USER/BASIC_AUTH_PASS"


@pytest.mark.slow
@pytest.mark.parametrize("host, times", [("0.0.0.0", 1), ("127.0.0.1", 0)])
def test_gunicorn_logs_the_warning_once_per_start_for_0_0_0_0_only(tmp_path: Path, random_model_root: Path,
                                                                   host: str, times: int) -> None:
    """Two workers, one warning: gunicorn's master says it (``when_ready``), not each worker."""
    env = {"MODEL_ROOT": str(random_model_root), "MODEL_PATH": "yolov5nu.pt", "RUNTIME": "torch", "WORKERS": "2",
           "THREADS": "2", "DEVICE": "cpu", "LABEL_STUDIO_URL": "http://127.0.0.1:9", "BASIC_AUTH_USER": "",
           "BASIC_AUTH_PASS": "", "ADMIN_OPEN": "false"}
    server = start_backend(tmp_path / "backend", env, host=host)
    try:
        assert requests.get(f"{server.url}/metrics", timeout=5).status_code == 401  # admin closed by default
        deadline = time.monotonic() + 120
        while server.log_path.read_text().count("Booting worker") < 2:  # both workers up: "once" means something
            assert time.monotonic() < deadline, log_tail(server.log_path)
            time.sleep(0.1)  # a poll interval
        assert server.log_path.read_text().count(WARNING) == times, log_tail(server.log_path)
    finally:
        server.stop()


def test_compose_publishes_label_studio_and_the_backend_on_loopback_by_default() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["backend"]["ports"] == ["${BACKEND_BIND:-127.0.0.1}:9090:9090"]
    assert services["label-studio"]["ports"] == ["${LABEL_STUDIO_BIND:-127.0.0.1}:8080:8080"]
    assert services["backend"]["environment"]["ADMIN_OPEN"] == "${ADMIN_OPEN:-false}"
