"""The newcomers' command: ``scripts/demo.py`` sets up a project whose tasks all carry pre-labels."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.label_studio import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_demo_sets_up_a_project_with_pre_labels(tmp_path: Path) -> None:
    ls_port, backend_port = free_port(), free_port()
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--exit", "--images", "6", "--model", "shapes",
         "--ls-port", str(ls_port), "--backend-port", str(backend_port), "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "6 of 6 tasks have a prediction from the backend" in done.stdout, done.stdout
    assert re.search(rf"Open http://127\.0\.0\.1:{ls_port}/projects/\d+/data", done.stdout)
    assert "login:    demo@example.com" in done.stdout
