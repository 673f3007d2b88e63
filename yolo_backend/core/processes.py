"""What a child process of the service starts with: serving's export check and training runs alike."""

from __future__ import annotations

import os
from pathlib import Path


def child_env() -> dict[str, str]:
    """The parent's environment, with this package importable whatever the working directory."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    # Ultralytics' progress bars would flood the service log; the run logs one line per epoch itself.
    return {"YOLO_VERBOSE": "False", "YOLO_OFFLINE": "1", **os.environ, "PYTHONPATH": os.pathsep.join(paths)}
