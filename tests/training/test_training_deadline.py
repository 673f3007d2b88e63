"""TRAIN_TIMEOUT's deadline inside publish: what serves is what the record says.

A real tiny run (12 shape images, 1 epoch at 64 px, in a child process) whose deadline is
placed inside ``Registry.publish`` by ``tests/support/deadline_in_publish.py`` (no timer
race): once publish has switched the registry, the run is recorded promoted, with a note,
and retention runs; before publish takes the registry lock, the run is recorded failed and
nothing it made serves.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.test_training_runs import tiny_settings, tiny_source
from yolo_backend.config import Settings
from yolo_backend.core.registry import Registry
from yolo_backend.core.status import StatusBook
from yolo_backend.training.job import TIMED_OUT
from yolo_backend.training.retention import training_images

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def settings_for(tmp_path: Path, model_root: Path) -> Settings:
    return tiny_settings(tmp_path, model_root, train_timeout=3600, keep_versions=1, runtime="torch")


def seeded(settings: Settings, project: str) -> Registry:
    """Two promoted versions (the second serves) and a stale cached training image: what retention prunes."""
    registry = Registry(settings.model_dir_path, project)
    for run_id in ("seed-1", "seed-2"):
        registry.publish(settings.model_root_path / settings.model_path, ["square", "circle"], {}, run_id)
    stale = training_images(settings.model_dir_path, project) / ("0" * 32 + ".jpg")
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"an image no task uses any more")
    return registry


def run_with_deadline(settings: Settings, project: str, source: str, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.support.deadline_in_publish", project, source, mode],
                          input=json.dumps(dataclasses.asdict(settings)), cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False", "PATH": "/usr/bin:/bin",
                                            "PYTHONPATH": str(ROOT)})


def test_a_deadline_after_the_registry_switched_records_the_run_promoted_and_prunes(
        tmp_path: Path, random_model_root: Path) -> None:
    settings = settings_for(tmp_path, random_model_root)
    registry = seeded(settings, "61")
    done = run_with_deadline(settings, "61", tiny_source(tmp_path), "during")
    assert done.returncode == TIMED_OUT, done.stderr[-3000:]

    data = registry.load()
    version = data["versions"][-1]
    assert data["served"] == version["version"] == "p61-v3"
    [run] = StatusBook(settings.model_dir_path, "61").read()["history"]
    assert run["state"] == "promoted" and run["version"] == "p61-v3" and run["run_id"] == version["run_id"], run
    assert run["reason"].startswith(version["decision"])
    assert run["reason"].endswith("the TRAIN_TIMEOUT=3600 s deadline came after publishing p61-v3 (during publish)")
    assert run["metrics"]["candidate"] and run["metrics"]["gain"]  # the scores it was published with
    # retention ran: KEEP_VERSIONS=1 keeps the served p61-v3 only; the stale image went, the run's images stayed
    assert run["metrics"]["retention"]["removed"] == ["p61-v1", "p61-v2"], run["metrics"]["retention"]
    assert [bool(v.get("removed")) for v in registry.load()["versions"]] == [True, True, False]
    images = training_images(settings.model_dir_path, "61")
    assert not (images / ("0" * 32 + ".jpg")).exists() and len(list(images.glob("*.jpg"))) == 12
    assert not (registry.folder / "runs" / run["run_id"]).exists()


def test_a_deadline_before_publish_takes_the_lock_fails_the_run_and_nothing_new_serves(
        tmp_path: Path, random_model_root: Path) -> None:
    settings = settings_for(tmp_path, random_model_root)
    registry = seeded(settings, "62")
    before = registry.path.read_bytes()
    done = run_with_deadline(settings, "62", tiny_source(tmp_path), "before")
    assert done.returncode == TIMED_OUT, done.stderr[-3000:]

    assert registry.path.read_bytes() == before and registry.load()["served"] == "p62-v2"
    assert sorted(p.name for p in (registry.folder / "versions").iterdir()) == ["p62-v1.pt", "p62-v2.pt"]
    [run] = StatusBook(settings.model_dir_path, "62").read()["history"]
    assert run["state"] == "failed" and run["version"] is None
    assert run["reason"] == "the run took more than TRAIN_TIMEOUT=3600 s (stopped during publish)"
