"""TRAIN_TIMEOUT bounds a whole run: a run stuck before its first epoch is stopped, recorded, cleaned up.

The stuck step is real: every task's image URL points at a loopback server that sends
headers, then one byte every half second, so the run sits in the dataset step (fetching
images) and never reaches the epoch callback. The run executes in a real child process
(the local runner), as in tests/training/test_training_runs.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.hostile_server import HostileServer
from tests.support.shapes_project import export_file, write_project
from tests.training.test_training_redis import redis_url, settings_env  # noqa: F401  (fixture)
from tests.training.test_training_runs import alive, tiny_settings, wait_for
from yolo_backend.config import Settings
from yolo_backend.core.durable import is_locked
from yolo_backend.core.registry import project_dir
from yolo_backend.core.state import RunRecord, RunState, start
from yolo_backend.core.status import StatusBook
from yolo_backend.training import ProjectTrainer
from yolo_backend.training.coalesce import Coalescer
from yolo_backend.training.job import record_timeout

TIMEOUT = 5
WAIT = TIMEOUT + 120  # how long a test polls for the outcome: generous, a busy machine starts processes slowly
ROOT = Path(__file__).resolve().parents[2]


def slow_source(tmp_path: Path, server: HostileServer) -> str:
    """Twelve annotated tasks whose images the server dribbles out a byte at a time."""
    tasks = write_project(tmp_path / "docroot", 12, size=(128, 128), max_shapes=2)
    for task in tasks:
        task["data"]["image"] = f"{server.url}/slow/task-{task['id']}.jpg"
    return export_file(tmp_path / "export.json", tasks)


def stuck_settings(tmp_path: Path, model_root: Path, **changes: object) -> Settings:
    return tiny_settings(tmp_path, model_root, train_timeout=TIMEOUT, media_allowed_hosts="127.0.0.1", **changes)


def leftover_run_folder(settings: Settings, project: str) -> Path:
    """A work folder as a run killed with ``kill -9`` leaves it."""
    folder = project_dir(settings.model_dir_path, project) / "runs" / "20240101-000000-killed" / "dataset"
    folder.mkdir(parents=True)
    (folder / "data.yaml").write_text("path: gone\n")
    return folder.parent


def assert_stopped_by_the_watchdog(trainer: ProjectTrainer, project: str) -> dict:
    """The run failed with the TRAIN_TIMEOUT reason, by the deadline; nothing of it is left running or on disk.

    What happened is asserted, not how long it took: a loaded machine starts processes slowly, so
    only the lower bound is checked (the watchdog never stops a run before its deadline).
    """
    status = wait_for(lambda: (s := trainer.status(project))["state"] == "idle" and s["last_run"] and s,
                      "the stuck run to be stopped", timeout=WAIT)
    last = status["last_run"]
    assert last["state"] == "failed", last
    # Stuck fetching images, it never gets past the dataset step; on a busy machine the deadline can come
    # while the run still starts (imports, reading the project), and then no or an earlier step is named.
    assert last["reason"] in (f"the run took more than TRAIN_TIMEOUT={TIMEOUT} s" + during for during in (
        "", " (stopped during collect: reading the project's tasks)",
        " (stopped during write dataset: fetching and decoding images)")), last["reason"]
    assert last["finished_at"] - last["started_at"] >= TIMEOUT - 0.5, "stopped before its deadline"
    pid = Coalescer(trainer.model_dir, project).read().get("pid")
    assert pid and wait_for(lambda: not alive(pid), "the run's process to be gone", timeout=WAIT)
    assert not is_locked(Coalescer(trainer.model_dir, project).run_lock)
    runs = project_dir(trainer.model_dir, project) / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())
    assert [r["state"] for r in StatusBook(trainer.model_dir, project).read()["history"]] == ["failed"]
    return last


@pytest.mark.slow
def test_a_run_stuck_fetching_images_is_stopped_at_train_timeout(tmp_path: Path, random_model_root: Path) -> None:
    with HostileServer() as server:
        settings = stuck_settings(tmp_path, random_model_root)
        stale = leftover_run_folder(settings, "41")
        trainer = ProjectTrainer(settings, source=slow_source(tmp_path, server))
        assert trainer.handle("START_TRAINING", "41")["status"] == "queued"
        wait_for(lambda: trainer.status("41")["state"] == "running", "the run to start", timeout=WAIT)

        assert_stopped_by_the_watchdog(trainer, "41")
        assert not stale.exists()

        again = trainer.handle("START_TRAINING", "41")  # the project is free: a new run is queued
        assert again["status"] == "queued", again
        history = wait_for(lambda: trainer.status("41")["state"] == "idle" and len(
            h := StatusBook(trainer.model_dir, "41").read()["history"]) == 2 and h, "the second run to end",
            timeout=WAIT)
        assert [r["state"] for r in history] == ["failed", "failed"]  # stuck again, stopped again


@pytest.mark.redis
@pytest.mark.slow
def test_a_stuck_run_under_rq_worker_is_stopped_at_train_timeout(tmp_path: Path, random_model_root: Path,
                                                                 redis_url: str) -> None:  # noqa: F811
    with HostileServer() as server:
        settings = stuck_settings(tmp_path, random_model_root, redis_url=redis_url)
        trainer = ProjectTrainer(settings, source=slow_source(tmp_path, server))
        assert trainer.handle("START_TRAINING", "42")["status"] == "queued"
        rq = Path(sys.executable).with_name("rq")
        worker = subprocess.run([str(rq), "worker", "--burst", "--url", redis_url, settings.train_queue],
                                env=settings_env(settings), cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert worker.returncode == 0, worker.stderr[-2000:]  # the worker itself survived its job's deadline
        assert_stopped_by_the_watchdog(trainer, "42")
        assert trainer.handle("START_TRAINING", "42")["status"] == "queued"


def test_the_watchdog_leaves_a_run_that_already_finished_as_it_ended(tmp_path: Path) -> None:
    book = StatusBook(tmp_path, "43")
    run = RunRecord("43")
    book.save(start(run))
    assert record_timeout(book, run, "too slow")
    assert book.last().state == RunState.FAILED and book.current() is None

    done = RunRecord("43")
    book.save(start(done))
    done.state = RunState.PROMOTED
    book.save(done)
    assert not record_timeout(book, done, "too slow")  # finished just before the deadline: untouched
    assert [r["state"] for r in book.read()["history"]] == ["failed", "promoted"]
