"""Redis mode: runs go to an RQ queue and a real ``rq worker`` executes them, against a real redis-server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.training.test_training_runs import finished, tiny_settings, tiny_source
from yolo_backend.config import SETTINGS, Settings
from yolo_backend.core.status import StatusBook
from yolo_backend.training import ProjectTrainer

pytestmark = [pytest.mark.redis, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path: Path):
    server = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                              else None)
    if server is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required under CI=true: apt-get install redis-server")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    from redis import Redis

    client = Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment an ``rq worker`` on another machine would be given for these settings."""
    env = {**os.environ, "YOLO_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    for var in SETTINGS:
        env[var.env] = str(getattr(settings, var.env.lower()))
    return env


def test_rq_worker_executes_queued_runs_and_folds_triggers(tmp_path: Path, random_model_root: Path,
                                                          redis_url: str) -> None:
    settings = tiny_settings(tmp_path, random_model_root, redis_url=redis_url)
    trainer = ProjectTrainer(settings, source=tiny_source(tmp_path))
    first = trainer.handle("START_TRAINING", "31")
    assert first["status"] == "queued" and first["runner"] == "rq"
    assert trainer.status("31")["state"] == "queued"
    # No worker yet: the job waits in Redis and further triggers fold into one follow-up.
    assert [trainer.handle("START_TRAINING", "31")["status"] for _ in range(3)] == ["folded"] * 3

    rq = Path(sys.executable).with_name("rq")
    worker = subprocess.run([str(rq), "worker", "--burst", "--url", redis_url, settings.train_queue],
                            env=settings_env(settings), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stderr[-3000:]
    said = next(line for line in worker.stderr.splitlines() if "training with Settings(" in line)
    assert f"train_epochs={settings.train_epochs}" in said and f"train_imgsz={settings.train_imgsz}" in said
    status = finished(trainer, "31")
    history = StatusBook(trainer.model_dir, "31").read()["history"]
    assert [r["state"] for r in history][:1] == ["promoted"] and len(history) == 2, history
    assert status["served_version"] in ("p31-v1", "p31-v2")


def test_webhook_answers_failed_when_redis_is_down(tmp_path: Path, random_model_root: Path) -> None:
    """Answered with the reason, not an exception or a hang; how fast is not bounded here (a loaded machine)."""
    settings = tiny_settings(tmp_path, random_model_root, redis_url=f"redis://127.0.0.1:{_free_port()}/0")
    trainer = ProjectTrainer(settings, source=tiny_source(tmp_path))
    answer = trainer.handle("START_TRAINING", "32")
    assert answer["status"] == "failed" and "could not queue" in answer["reason"]
    assert trainer.status("32")["last_run"]["state"] == "failed"
    assert trainer.status("32")["state"] == "idle"  # nothing left scheduled: the next trigger can queue
