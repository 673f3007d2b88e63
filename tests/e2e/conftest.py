"""The backend as in production (gunicorn), serving the quickly trained shapes model, for the e2e checks.

``label_studio`` (one real Label Studio per session) comes from ``tests/support/label_studio.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backend_server import BackendServer, start_backend
from tests.support.label_studio import LabelStudioServer
from tests.support.trained_model import RECIPE

MODEL_FILE = "shapes.pt"
IMGSZ = str(RECIPE["imgsz"])  # the size the shapes model was trained at: objects keep the scale it learned


@pytest.fixture(scope="session")
def shapes_model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODEL_ROOT with the shapes model (square, circle), trained on first use and cached on disk."""
    from tests.support.trained_model import trained_shapes_model  # trains it when not cached (minutes)

    root = tmp_path_factory.mktemp("model-root")
    shutil.copyfile(trained_shapes_model(), root / MODEL_FILE)
    return root


def backend_env(ls: LabelStudioServer, model_root: Path, **extra: str) -> dict[str, str]:
    """Production settings pointing at this Label Studio; images are downloaded over HTTP with the token."""
    return {"MODEL_ROOT": str(model_root), "MODEL_PATH": MODEL_FILE, "IMGSZ": IMGSZ, "DEVICE": "cpu",
            "LABEL_STUDIO_URL": ls.base_url, "LABEL_STUDIO_API_KEY": ls.legacy_token, "THREADS": "4",
            "LOG_LEVEL": "INFO", "ADMIN_OPEN": "true", **extra}


@pytest.fixture(scope="session")
def backend(label_studio: LabelStudioServer, shapes_model_root: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    """The backend with the legacy token, shared by the checks that need no special settings."""
    server = start_backend(tmp_path_factory.mktemp("backend"), backend_env(label_studio, shapes_model_root))
    yield server
    server.stop()


@pytest.fixture
def start_extra_backend(label_studio: LabelStudioServer, shapes_model_root: Path,
                        tmp_path: Path) -> Iterator:
    """Start another backend with extra settings (basic auth, another key); stopped after the test."""
    started: list[BackendServer] = []

    def start(**extra: str) -> BackendServer:
        # torch: these check auth, not the CPU engine; skipping the OpenVINO export saves ~15 s per start
        env = backend_env(label_studio, shapes_model_root, RUNTIME="torch", **extra)
        server = start_backend(tmp_path / f"backend-{len(started)}", env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
