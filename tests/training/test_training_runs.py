"""Real runs in real child processes: coalescing and ``kill -9`` in the middle of a run.

Tiny runs (12 images of 128 px, 64 px training) keep these to tens of seconds; what
they prove is the scheduling and the durability, not the learning.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.shapes_project import export_file, write_project
from yolo_backend.config import Settings
from yolo_backend.core.registry import Registry
from yolo_backend.core.status import StatusBook
from yolo_backend.training import ProjectTrainer
from yolo_backend.training.coalesce import Coalescer

pytestmark = pytest.mark.slow


def tiny_settings(tmp_path: Path, model_root: Path, **changes) -> Settings:
    values = dict(model_root=str(model_root), model_path="yolov5nu.pt", model_dir=str(tmp_path / "state"),
                  local_files_document_root=str(tmp_path / "docroot"), device="cpu", train_imgsz=64,
                  train_epochs=1, train_batch=4, train_min_images=10, train_patience=50,
                  promote_min_gain=0.0)  # ties promote: these check scheduling and durability, not learning
    values.update(changes)
    return Settings.from_env({}, **values)


def tiny_source(tmp_path: Path) -> str:
    tasks = write_project(tmp_path / "docroot", 12, size=(128, 128), max_shapes=2)
    return export_file(tmp_path / "export.json", tasks)


def wait_for(check, what: str, timeout: float = 300, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def finished(trainer: ProjectTrainer, project: str) -> dict:
    return wait_for(lambda: (s := trainer.status(project))["state"] == "idle" and s["last_run"] and s,
                    "the run to finish")


def test_ten_triggers_during_a_run_lead_to_exactly_one_follow_up(tmp_path: Path, random_model_root: Path) -> None:
    trainer = ProjectTrainer(tiny_settings(tmp_path, random_model_root), source=tiny_source(tmp_path))
    assert trainer.handle("START_TRAINING", "21")["status"] == "queued"
    wait_for(lambda: trainer.status("21")["state"] == "running", "the run to start")
    answers = [trainer.handle("START_TRAINING", "21")["status"] for _ in range(10)]
    assert answers == ["folded"] * 10
    assert trainer.status("21")["follow_up_pending"]
    finished(trainer, "21")
    history = StatusBook(trainer.model_dir, "21").read()["history"]
    assert len(history) == 2, [(r["run_id"], r["state"], r["reason"]) for r in history]
    assert history[0]["state"] == "promoted" and history[1]["state"] in ("promoted", "rejected")
    assert history[1]["started_at"] >= history[0]["finished_at"]  # one after the other, never together
    assert not Coalescer(trainer.model_dir, "21").read()["scheduled"]


def test_kill_9_mid_run_leaves_model_and_registry_intact_and_the_next_run_succeeds(
        tmp_path: Path, random_model_root: Path) -> None:
    settings = tiny_settings(tmp_path, random_model_root, train_epochs=200)
    source = tiny_source(tmp_path)
    registry = Registry(settings.model_dir_path, "22")
    registry.publish(random_model_root / "yolov5nu.pt", ["square", "circle"], {}, "seed-run")
    registry_bytes = registry.path.read_bytes()
    served = registry.checkpoint(registry.served())
    served_bytes = served.read_bytes()

    trainer = ProjectTrainer(settings, source=source)
    assert trainer.handle("START_TRAINING", "22")["status"] == "queued"
    wait_for(lambda: ((trainer.status("22")["run"] or {}).get("progress") or {}).get("epoch", 0) >= 1,
             "an epoch to finish")
    pid = Coalescer(trainer.model_dir, "22").read()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), "the worker to die")

    assert registry.path.read_bytes() == registry_bytes
    assert served.read_bytes() == served_bytes
    assert (trainer.lookup("22")[0].path, trainer.lookup("22")[0].version) == (served, "p22-v1")
    status = trainer.status("22")
    assert status["state"] == "idle" and status["last_run"]["state"] == "failed"
    assert "stopped during the run" in status["last_run"]["reason"]

    restarted = ProjectTrainer(tiny_settings(tmp_path, random_model_root), source=source)  # a fresh service
    assert (restarted.lookup("22")[0].path, restarted.lookup("22")[0].version) == (served, "p22-v1")
    assert restarted.handle("START_TRAINING", "22")["status"] == "queued"
    last = finished(restarted, "22")["last_run"]
    assert last["state"] == "promoted", last  # the seed version's classes are not the labels
    assert restarted.lookup("22")[0].version == "p22-v2"


def alive(pid: int) -> bool:
    """Whether process ``pid`` still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
