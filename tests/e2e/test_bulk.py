"""Retrieve predictions beyond one /predict's budget, against a real Label Studio (and a real Redis).

A small form of ``scripts/bench_bulk.py``: PREDICT_BUDGET_SECONDS is cut to a fraction of a second so
a few dozen tasks overflow it. Checked: Label Studio's action returns, stores no empty prediction for
the tasks handed on, a task opened meanwhile gets its prediction on open and the job skips it, and in
the end every task holds exactly one prediction of the current version. With REDIS_URL, two
``rq worker`` processes share the chunks; one is killed mid-chunk and nothing is lost or doubled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.e2e import projects
from tests.e2e.conftest import backend_env
from tests.e2e.test_training import wait_for
from tests.support.backend_server import BackendServer, start_backend
from tests.support.label_studio import LabelStudioServer
from tests.support.sample_images import write_samples
from tests.training.test_training_redis import redis_url  # noqa: F401  (fixture: a real redis-server)
from yolo_backend.bulk.ledger import Ledger
from yolo_backend.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
TIGHT = {"PREDICT_BUDGET_SECONDS": "0.3", "RUNTIME": "torch"}


def project_with(ls: LabelStudioServer, server: BackendServer, title: str, count: int, seed: int) -> tuple[int, str]:
    project = projects.create_project(ls, title)
    samples = write_samples(ls.document_root / f"bulk-{project}", count, first_seed=seed)
    projects.import_local_tasks(ls, project, [s.path for s in samples])
    ml = projects.connect_backend(ls, project, server.url, title="yolo-bulk")
    return project, ml.model_version


def predictions(ls: LabelStudioServer, project: int) -> dict[int, list[dict]]:
    """Task id -> its stored predictions."""
    by_task: dict[int, list[dict]] = {task: [] for task in projects.task_ids(ls, project)}
    answer = ls.api("GET", "/api/predictions", params={"project": project})
    answer.raise_for_status()
    for prediction in answer.json():
        by_task[prediction["task"]].append(prediction)
    return by_task


def jobs(server: BackendServer, project: int) -> list[dict]:
    return requests.get(f"{server.url}/bulk/status", params={"project": project}, timeout=10).json()["jobs"]


def exactly_one_each(ls: LabelStudioServer, server: BackendServer, project: int, version: str) -> None:
    """One prediction per task, of ``version``, and (every third task) the one /predict gives for that task now."""
    stored = predictions(ls, project)
    counts = Counter(len(found) for found in stored.values())
    assert counts == Counter({1: len(stored)}), f"predictions per task: {counts}"
    assert {found[0]["model_version"] for found in stored.values()} == {version}
    config = ls.client().projects.get(id=project).label_config
    for task_id, [prediction] in list(stored.items())[::3]:
        task = projects.open_task(ls, task_id)
        answer = requests.post(f"{server.url}/predict", json={"tasks": [task], "project": str(project),
                                                               "label_config": config}, timeout=60).json()
        [again] = answer["results"]
        assert [r["value"] for r in prediction["result"]] == [r["value"] for r in again["result"]], task_id


def test_retrieve_beyond_the_budget_hands_the_rest_to_a_job_and_an_opened_task_is_answered_on_open(
        label_studio: LabelStudioServer, shapes_model_root: Path, tmp_path: Path) -> None:
    server = start_backend(tmp_path / "backend", backend_env(label_studio, shapes_model_root, **TIGHT,
                                                             BULK_CHUNK="8"))
    try:
        project, version = project_with(label_studio, server, "e2e: bulk retrieve", 32, seed=5000)
        started = time.monotonic()
        label_studio.client().actions.create(id="retrieve_tasks_predictions", project=project,
                                             selected_items={"all": True, "excluded": []})
        answered_in = time.monotonic() - started
        [job] = jobs(server, project)
        assert 0 < job["total"] < 32 and job["origin"] == "retrieve", "answered in part, within the budget"
        page = requests.get(f"{server.url}/status", params={"project": project}, timeout=30).text
        assert "Bulk pre-labelling" in page and job["job"] in page and f"of {job['total']}" in page
        queued = _tasks_in(Ledger(tmp_path / "backend" / "model-dir"), job["job"], "queued")
        stored = predictions(label_studio, project)
        assert queued and not any(stored[task] for task in queued), "nothing, not an empty prediction, stored"
        assert sum(bool(found) for found in stored.values()) >= 32 - job["total"]

        last = max(queued)  # chunks go in task order: the last task is still queued
        opened = projects.open_task(label_studio, last)
        assert [p["model_version"] for p in opened["predictions"]] == [version]

        done = wait_for("the bulk job", lambda: [j for j in jobs(server, project) if j["state"] != "running"],
                        timeout=300)[0]
        # opened while queued: predicted on open and skipped by the job (opened 1; tests/bulk/test_routes.py has it
        # without a race); on a slow machine a chunk may hold it already: /predict then waits for its store
        assert (done["state"], done["stored"] + done["opened"], done["failed"]) == ("done", job["total"], 0), done
        exactly_one_each(label_studio, server, project, version)
        # a second Retrieve finds every task predicted by this version: Label Studio sends nothing
        label_studio.client().actions.create(id="retrieve_tasks_predictions", project=project,
                                             selected_items={"all": True, "excluded": []})
        assert len(jobs(server, project)) == 1
        exactly_one_each(label_studio, server, project, version)
        said = [line for line in server.log_path.read_text().splitlines() if "/predict answered" in line]
        assert len(said) == 1 and "of 32 tasks" in said[0], said  # one request for the whole selection
        log = label_studio.log_path.read_text(errors="replace")
        assert "incorrect prediction" not in log and "Number of tasks and responses are not equal" not in log
        print(f"\n[bulk retrieve] 32 tasks: {32 - job['total']} answered in {answered_in:.1f} s, {job['total']} by "
              f"the job ({done['rate_per_s']} tasks/s)")
    finally:
        server.stop()


@pytest.mark.redis
def test_rq_workers_share_a_job_and_a_killed_worker_loses_and_doubles_nothing(
        label_studio: LabelStudioServer, shapes_model_root: Path, tmp_path: Path, redis_url: str,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = tmp_path / "model-dir"
    env = backend_env(label_studio, shapes_model_root, **TIGHT, BULK_CHUNK="32", BULK_LEASE_SECONDS="4",
                      REDIS_URL=redis_url, MODEL_DIR=str(model_dir), LOCAL_FILES_DOCUMENT_ROOT=str(
                          label_studio.document_root))
    server = start_backend(tmp_path / "backend", env)
    worker_env = {**os.environ, **env, "YOLO_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    rq = [str(Path(sys.executable).with_name("rq")), "worker", "--url", redis_url, "--worker-class",
          "rq.worker.SimpleWorker", "yolo-bulk"]  # no fork: killing the worker kills its chunk
    logs = contextlib.ExitStack()
    workers = [subprocess.Popen(rq, env=worker_env, cwd=ROOT, stdout=logs.enter_context(
        (tmp_path / f"worker-{i}.log").open("wb")), stderr=subprocess.STDOUT) for i in range(2)]
    try:
        project, version = project_with(label_studio, server, "e2e: bulk rq", 96, seed=6000)
        ledger = Ledger(model_dir)

        killed = {}

        def kill_one_mid_chunk() -> bool:
            """A worker holding claimed tasks of a chunk it has not finished (predicted, not yet stored): kill -9."""
            for job in ledger.jobs(str(project)):
                for chunk, owner in _chunks_half_done(ledger, job.id):
                    pid = int(owner.split(":")[1])
                    if any(w.pid == pid and w.poll() is None for w in workers):
                        os.kill(pid, signal.SIGKILL)
                        killed.update(job=job.id, chunk=chunk, pid=pid)
                        return True
            return False

        command = ["prelabel", "--project", str(project), "--backend", server.url, "--url", label_studio.base_url,
                   "--api-key", label_studio.legacy_token]
        follower = _in_thread(lambda: main(command))
        wait_for("a worker mid-chunk", kill_one_mid_chunk, timeout=300, every=0.05)
        assert follower.join(timeout=600) == 0, capsys.readouterr()
        out = capsys.readouterr().out
        assert f"model version {version}: 96 done, 0 skipped (already predicted), 0 failed, of 96 tasks" in out
        attempts = _attempts(ledger, killed["job"], killed["chunk"])
        assert attempts == 2, f"the killed chunk ran {attempts} times"
        exactly_one_each(label_studio, server, project, version)
        print(f"\n[bulk rq] 96 tasks, 2 workers, worker {killed['pid']} killed in chunk {killed['chunk']}: "
              f"{jobs(server, project)[0]['rate_per_s']} tasks/s")
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(10)
        logs.close()
        server.stop()


def _chunks_half_done(ledger: Ledger, job_id: str) -> list[tuple[int, str]]:
    import sqlite3

    with sqlite3.connect(ledger.path) as db:
        return db.execute("SELECT c.chunk, c.owner FROM chunks c WHERE c.job = ? AND c.state = 'running' AND EXISTS "
                          "(SELECT 1 FROM tasks t WHERE t.job = c.job AND t.chunk = c.chunk AND t.state = 'claimed' "
                          "AND t.owner = c.owner)", (job_id,)).fetchall()


def _tasks_in(ledger: Ledger, job_id: str, state: str) -> list[int]:
    import sqlite3

    with sqlite3.connect(ledger.path) as db:
        return [row[0] for row in db.execute("SELECT task FROM tasks WHERE job = ? AND state = ?", (job_id, state))]


def _attempts(ledger: Ledger, job_id: str, chunk: int) -> int:
    import sqlite3

    with sqlite3.connect(ledger.path) as db:
        return db.execute("SELECT attempts FROM chunks WHERE job = ? AND chunk = ?", (job_id, chunk)).fetchone()[0]


class _in_thread:  # reads as a call
    """Run ``call`` in a thread; ``join`` gives its return value."""

    def __init__(self, call) -> None:
        import threading

        self.value = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call) -> None:
        self.value = call()

    def join(self, timeout: float) -> object:
        self.thread.join(timeout)
        return self.value


def test_a_bad_task_costs_a_chunk_only_itself(label_studio: LabelStudioServer, shapes_model_root: Path,
                                               tmp_path: Path) -> None:
    """A malformed task makes the batch's predict raise: the chunk goes task by task, stores the rest, says why."""
    from tests.e2e.conftest import IMGSZ, MODEL_FILE
    from yolo_backend.bulk.chunks import run_chunk
    from yolo_backend.bulk.worker import _engine
    from yolo_backend.config import Settings

    project = projects.create_project(label_studio, "e2e: bulk bad task")
    samples = write_samples(label_studio.document_root / f"bulk-{project}", 5, first_seed=7000)
    projects.import_local_tasks(label_studio, project, [s.path for s in samples])
    ids = projects.task_ids(label_studio, project)
    tasks = [projects.open_task(label_studio, task_id) for task_id in ids]
    tasks[2] = {"id": ids[2], "data": "not an object"}
    settings = Settings.from_env({}, model_root=str(shapes_model_root), model_path=MODEL_FILE, imgsz=IMGSZ,
                                 model_dir=str(tmp_path / "state"), device="cpu", runtime="torch",
                                 label_studio_url=label_studio.base_url,
                                 label_studio_api_key=label_studio.legacy_token,
                                 local_files_document_root=str(label_studio.document_root))
    ledger = Ledger(settings.model_dir_path)
    job = ledger.create(str(project), "v", projects.LABEL_CONFIG, tasks, chunk_size=8, origin="prelabel")
    assert job is not None
    engine, client = _engine(settings)
    result = run_chunk(ledger, job.id, 0, engine, client, lease_s=60)
    assert (result.stored, result.failed) == (4, 1)
    progress = ledger.progress(job.id)
    assert progress["state"] == "done" and progress["failures"][0]["task"] == ids[2]
    assert "must be an object" in progress["failures"][0]["reason"]
    stored = predictions(label_studio, project)
    assert [len(stored[task_id]) for task_id in ids] == [1, 1, 0, 1, 1]
