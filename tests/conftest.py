"""Shared fixtures: settings on temporary folders, a real Ultralytics model built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.label_studio import label_studio  # noqa: F401  (session fixture: a real Label Studio)

os.environ.setdefault("YOLO_OFFLINE", "1")  # Ultralytics: no update checks or downloads in tests

ROOT = Path(__file__).resolve().parent.parent
COCO128 = ROOT.parent / "shared" / "datasets" / "coco128"


@pytest.fixture(scope="session")
def random_model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODEL_ROOT holding ``yolov5nu.pt``: the real yolov5nu architecture, random weights, 80 classes."""
    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("model-root")
    YOLO("yolov5nu.yaml").save(str(root / "yolov5nu.pt"))
    return root
