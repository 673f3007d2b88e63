"""The backend as it runs in production, ``gunicorn _wsgi:app`` on a loopback port, for tests and the demo.

    server = start_backend(workdir, {"MODEL_ROOT": str(root), "MODEL_PATH": "shapes.pt",
                                     "LABEL_STUDIO_URL": ls.base_url, "LABEL_STUDIO_API_KEY": token})
    server.url      # "http://127.0.0.1:<port>", what Label Studio is given
    server.stop()

``start_backend`` returns once ``/health`` reports ``model_state: ready`` (or raises with the
backend's log tail), so the first ``/predict`` never waits for a loading model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.label_studio import free_port, log_tail, port_in_use

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0


class BackendFailed(RuntimeError):
    """The backend did not come up; the message carries its log."""


@dataclass
class BackendServer:
    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def health(self) -> dict:
        return requests.get(f"{self.url}/health", timeout=5).json()

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()  # gunicorn: graceful shutdown of its workers
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_backend(workdir: Path, env: dict[str, str], port: int | None = None,
                  timeout: float = READY_TIMEOUT_S, host: str = "127.0.0.1") -> BackendServer:
    """Start gunicorn with ``env`` on top of ours; MODEL_DIR defaults to ``workdir/model-dir``.

    ``host`` is the address it listens on (``0.0.0.0`` only for tests of what that warns about);
    ``server.url`` is on loopback either way.
    """
    port = port or free_port()
    if port_in_use(port):
        raise BackendFailed(f"port {port} is busy: pick another one")
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "MODEL_DIR": str(workdir / "model-dir"), "YOLO_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1", "YOLO_CONFIG_DIR": str(workdir / "ultralytics-config"), **env}
    threads = full_env.get("THREADS", "8")
    command = [sys.executable, "-m", "gunicorn", "_wsgi:app", "--bind", f"{host}:{port}",
               "--workers", full_env.get("WORKERS", "1"), "--threads", threads, "--timeout", "300"]
    log_path = workdir / f"backend-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = BackendServer(f"http://127.0.0.1:{port}", log_path, process)
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: BackendServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state = "not answering"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BackendFailed(f"gunicorn exited with {server.process.returncode}:\n{log_tail(server.log_path)}")
        try:
            health = server.health()
            state = health.get("model_state", "?")
            if state == "ready":
                return
            if state in ("error", "no_weights"):
                raise BackendFailed(f"backend model {state}: {health.get('message')}\n{log_tail(server.log_path)}")
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise BackendFailed(f"backend at {server.url} not ready within {timeout:.0f} s (last state: {state}):\n"
                        f"{log_tail(server.log_path)}")
