"""A real Label Studio for tests and the demo, started from its own virtual environment.

Label Studio's pins clash with ours, so it lives in its own venv: ``$LS_VENV``, default
``~/.cache/ls-yolo/label-studio-venv`` (installed there with ``python3 -m venv`` and
``pip install label-studio==1.23.2`` when missing, about 2.5 min, reused afterwards).

Use in tests (the session-scoped fixture is registered in ``tests/conftest.py``)::

    @pytest.mark.e2e
    def test_something(label_studio):
        ls = label_studio.client()                     # label_studio_sdk.LabelStudio, legacy token
        ls.projects.create(title="x", label_config=...)
        label_studio.base_url                           # "http://127.0.0.1:<port>"
        label_studio.legacy_token                       # 40 hex, accepted for API and /data/...
        label_studio.personal_access_token()            # a JWT PAT, created once per server
        label_studio.email, label_studio.password       # the login of the browser UI
        label_studio.document_root                      # local-files root: put images here and
        label_studio.local_files_url(path)              # -> "/data/local-files/?d=<relative>"

One server serves the whole session. Its SQLite database starts as a copy of an empty,
migrated one cached beside the venv (built once, about 2 min), so a start takes about 10 s.
Tests share it, so each creates its own projects and never assumes an empty server.
Outside CI the fixture skips when Label Studio cannot be installed; under ``CI=true`` it fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.label_studio_install import LabelStudioUnavailable, ensure_installed, migrated_database

START_TIMEOUT_S = 240.0


def free_port() -> int:
    """A loopback port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@dataclass
class LabelStudioServer:
    """A running Label Studio: where it is, how to log in, and its local-files root."""

    base_url: str
    email: str
    password: str
    legacy_token: str
    document_root: Path
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _pat: str | None = field(default=None, repr=False)

    def client(self, api_key: str | None = None) -> Any:
        """An SDK client (``label_studio_sdk.LabelStudio``); legacy token unless told otherwise."""
        from label_studio_sdk import LabelStudio

        return LabelStudio(base_url=self.base_url, api_key=api_key or self.legacy_token, timeout=120)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.legacy_token}"}

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A raw API call with the legacy token, for what the SDK does not cover."""
        kwargs.setdefault("timeout", 120)
        return requests.request(method, f"{self.base_url}{path}", headers=self.headers(), **kwargs)

    def personal_access_token(self) -> str:
        """A personal access token (JWT refresh token) of the user, created on first call.

        Label Studio allows one live PAT per user, so it is created once and remembered.
        """
        if self._pat is None:
            settings = self.api("GET", "/api/jwt/settings").json()
            if not settings.get("api_tokens_enabled", True):
                self.api("POST", "/api/jwt/settings", json={**settings, "api_tokens_enabled": True})
            answer = self.api("POST", "/api/token/")
            if answer.status_code not in (200, 201):
                raise LabelStudioUnavailable(f"creating a personal access token failed: {answer.status_code} "
                                             f"{answer.text[:300]}")
            self._pat = answer.json()["token"]
        return self._pat

    def local_files_url(self, path: Path) -> str:
        """The task URL Label Studio uses for a file under ``document_root``."""
        return f"/data/local-files/?d={path.resolve().relative_to(self.document_root.resolve()).as_posix()}"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_label_studio(workdir: Path, port: int | None = None, venv: Path | None = None,
                       timeout: float = START_TIMEOUT_S, email: str = "e2e@example.com",
                       password: str | None = None) -> LabelStudioServer:
    """Start Label Studio on loopback with its data and local-files root under ``workdir``."""
    exe = ensure_installed(venv)
    port = port or free_port()
    if port_in_use(port):  # Label Studio would silently move to the next port
        raise LabelStudioUnavailable(f"port {port} is busy: stop what listens there or pick another port")
    workdir.mkdir(parents=True, exist_ok=True)
    server = LabelStudioServer(
        base_url=f"http://127.0.0.1:{port}", email=email, password=password or "pw" + secrets.token_hex(8),
        legacy_token=secrets.token_hex(20), document_root=workdir / "files", data_dir=workdir / "ls-data",
        log_path=workdir / "label-studio.log",
    )
    server.document_root.mkdir(exist_ok=True)
    server.data_dir.mkdir(exist_ok=True)
    if not (server.data_dir / "label_studio.sqlite3").exists():
        shutil.copyfile(migrated_database(exe), server.data_dir / "label_studio.sqlite3")
    env = {**os.environ, **_server_env(server)}
    command = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
               "--host", server.base_url, "--data-dir", str(server.data_dir), "--username", server.email,
               "--password", server.password, "--user-token", server.legacy_token, "--enable-legacy-api-token"]
    with server.log_path.open("wb") as log:
        server.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                          start_new_session=True)
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _server_env(server: LabelStudioServer) -> dict[str, str]:
    return {
        "ML_BLOCK_LOCAL_IP": "false",  # else connecting a backend on 127.0.0.1 fails
        "SSRF_PROTECTION_ENABLED": "false",  # else the annotation webhook is silently never created
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(server.document_root),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_BASE_DATA_DIR": str(server.data_dir),
        "PYTHONUNBUFFERED": "1",
        "VIRTUAL_ENV": "",  # our venv must not leak into Label Studio's
    }


def _wait_ready(server: LabelStudioServer, timeout: float) -> None:
    """Poll until the API answers with our token (migrations and user creation are done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise LabelStudioUnavailable(f"Label Studio exited with {server.process.returncode}:\n"
                                         f"{log_tail(server.log_path)}")
        try:
            if server.api("GET", "/api/current-user/whoami", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1.0)
    raise LabelStudioUnavailable(f"Label Studio did not answer at {server.base_url} within {timeout:.0f} s:\n"
                                 f"{log_tail(server.log_path)}")


def required(what: str, reason: str) -> None:
    """Skip a test for a missing outside tool, except under CI=true, where it must fail loudly."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required in CI: {reason}")
    pytest.skip(f"{what} unavailable: {reason}")


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """One real Label Studio for the whole test session; stopped at the end."""
    try:
        server = start_label_studio(tmp_path_factory.mktemp("label-studio"))
    except LabelStudioUnavailable as exc:
        required("Label Studio", str(exc))
    try:
        yield server
    finally:
        server.stop()
