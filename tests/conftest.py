"""Shared fixtures: settings on temporary folders, a real Ultralytics model built offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.label_studio import label_studio  # noqa: F401  (session fixture: a real Label Studio)

os.environ.setdefault("YOLO_OFFLINE", "1")  # Ultralytics: no update checks or downloads in tests
# No internet here: a missing published checkpoint is not fetched from github.com by default in tests
# (servers started as subprocesses inherit this; in-process Settings get the default below). The
# weights tests turn it on against a loopback stand-in for the release host.
os.environ.setdefault("WEIGHTS_DOWNLOAD", "false")


@pytest.fixture(autouse=True)
def _no_weights_download_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Settings.from_env({})`` as tests build it: WEIGHTS_DOWNLOAD off unless the test names it."""
    from yolo_backend.config import Settings

    original = Settings.from_env.__func__  # type: ignore[attr-defined]

    def from_env(cls: type, environ: Any = None, **overrides: Any) -> Settings:
        if environ is not None and "WEIGHTS_DOWNLOAD" not in environ:
            overrides.setdefault("weights_download", False)
        return original(cls, environ, **overrides)

    monkeypatch.setattr(Settings, "from_env", classmethod(from_env))


ROOT = Path(__file__).resolve().parent.parent
COCO128 = ROOT.parent / "shared" / "datasets" / "coco128"


@pytest.fixture(scope="session")
def random_model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODEL_ROOT holding ``yolov5nu.pt``: the real yolov5nu architecture, random weights, 80 classes."""
    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("model-root")
    YOLO("yolov5nu.yaml").save(str(root / "yolov5nu.pt"))
    return root
