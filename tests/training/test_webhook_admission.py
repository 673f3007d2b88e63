"""Who may start a run: known projects only, a bounded queue of waiting runs, an optional shared secret.

Through the real app on a socket (``LiveApp``) with a stand-in Label Studio that knows the ids
each test names; the queue tests use the real local runner with ``sleep`` standing in for the
training process where only the scheduling matters. The last test checks the shared secret
against a real Label Studio: the Start training button (basic auth) and the project webhook
(a header set in its settings).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.live_app import LiveApp, RecordingRunner
from tests.training.test_training_redis import redis_url  # noqa: F401  (fixture: a real redis-server)
from yolo_backend.config import Settings
from yolo_backend.core.durable import locked, write_json
from yolo_backend.training import ProjectTrainer, admission
from yolo_backend.training.run_queue import QueueFull, RunQueue, proc_stat
from yolo_backend.training.runner import LocalRunner, RQRunner

SECRET = "w3bhook-Shared-s3cret"
JOB = "yolo_backend.training.job"


def post(app: LiveApp, action: str, project: Any, headers: dict[str, str] | None = None,
         auth: tuple[str, str] | None = None) -> requests.Response:
    body = {"action": action, "project": {"id": project}, "annotation": {"id": 1}}
    return requests.post(f"{app.url}/webhook", json=body, headers=headers, auth=auth, timeout=5)


def event(app: LiveApp, action: str, project: Any) -> dict[str, Any]:
    answer = post(app, action, project)
    assert answer.status_code == 200, answer.text
    return answer.json()


def folders(app: LiveApp) -> set[str]:
    root = app.settings.model_dir_path / "projects"
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


def training_children() -> list[int]:
    """Training processes started by this test process (the local runner's children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid() and \
                    JOB in (stat.parent / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.fixture
def app(tmp_path: Path):
    live = LiveApp(tmp_path, known_projects={7}, train_every_n=2, admin_open=True)
    yield live
    live.close()


# -- known projects only -------------------------------------------------------------------------
def test_triggers_for_projects_label_studio_does_not_know_are_refused_and_leave_nothing(app: LiveApp) -> None:
    for action in ("START_TRAINING", "ANNOTATION_CREATED", "ANNOTATIONS_DELETED"):
        answer = event(app, action, 8)
        assert answer["status"] == "refused" and "no project 8" in answer["reason"], answer
    assert folders(app) == set() and app.runner.submitted == []
    assert event(app, "START_TRAINING", 7)["status"] == "queued"
    assert folders(app) == {"7"} and [p for p, _ in app.runner.submitted] == ["7"]
    # events that could not start a run are answered without asking Label Studio
    assert event(app, "PROJECT_UPDATED", 9)["status"] == "ignored" and 9 not in app.label_studio.lookups


def test_label_studio_is_asked_once_per_project_and_a_no_only_for_a_while(
        app: LiveApp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission, "UNKNOWN_TTL_S", 0.5)
    for _ in range(5):
        event(app, "ANNOTATION_CREATED", 7)
        assert event(app, "ANNOTATION_CREATED", 8)["status"] == "refused"
    assert sorted(app.label_studio.lookups) == [7, 8]
    app.label_studio.projects[8] = {"label_config": "<View/>", "tasks": []}  # created in Label Studio meanwhile
    time.sleep(0.6)
    assert event(app, "ANNOTATION_CREATED", 8)["status"] == "counted"
    assert sorted(app.label_studio.lookups) == [7, 8, 8]


def test_without_an_api_key_no_trigger_is_admitted(tmp_path: Path) -> None:
    app = LiveApp(tmp_path, label_studio_api_key="")
    try:
        answer = event(app, "START_TRAINING", 3)
        assert answer["status"] == "refused" and "LABEL_STUDIO_API_KEY" in answer["reason"], answer
        assert folders(app) == set() and app.runner.submitted == [] and app.label_studio.lookups == []
    finally:
        app.close()


def test_a_slow_label_studio_still_gets_the_webhook_answered_within_its_1s_timeout(tmp_path: Path) -> None:
    app = LiveApp(tmp_path, known_projects={7})
    app.label_studio.delay = 3.0
    try:
        answer = event(app, "START_TRAINING", 7)
        # cut off by the lookup's timeout: waited for, Label Studio's answer (project 7 exists) would have queued it
        assert answer["status"] == "refused" and "could not ask Label Studio" in answer["reason"], answer
        assert answer["reason"].endswith("exists: ReadTimeout"), answer
        assert folders(app) == set()
    finally:
        app.label_studio.delay = 0.0
        app.close()


def test_a_flood_of_new_ids_asks_label_studio_at_a_bounded_rate(app: LiveApp) -> None:
    started = time.monotonic()
    answers = [event(app, "START_TRAINING", 1000 + i)["reason"] for i in range(100)]
    allowed = admission.LOOKUP_BURST + admission.LOOKUPS_PER_S * (time.monotonic() - started) + 1
    assert 0 < len(app.label_studio.lookups) <= allowed
    assert any("too many unknown project ids" in reason for reason in answers)
    assert folders(app) == set()
    # a project admitted before (its folder exists: another worker, or before a restart) is still asked, at once
    (app.settings.model_dir_path / "projects" / "7").mkdir(parents=True)
    assert event(app, "START_TRAINING", 7)["status"] == "queued" and app.label_studio.lookups[-1] == 7


def test_status_and_rollback_of_made_up_projects_create_no_folder(app: LiveApp) -> None:
    status = requests.get(f"{app.url}/training/status", params={"project": 123456}, timeout=5)
    assert status.status_code == 200 and status.json()["state"] == "idle"
    rollback = requests.post(f"{app.url}/training/rollback", json={"project": 123456, "version": "p123456-v1"},
                             timeout=5)
    assert rollback.status_code == 400 and "no trained versions" in rollback.json()["message"]
    assert folders(app) == set()


def test_export_file_sources_need_no_label_studio(tmp_path: Path) -> None:
    settings = Settings.from_env({}, model_dir=str(tmp_path / "state"), label_studio_url="http://127.0.0.1:9")
    runner = RecordingRunner()
    trainer = ProjectTrainer(settings, runner=runner, source=f"file:{tmp_path / 'export.json'}")  # type: ignore[arg-type]
    assert trainer.handle("START_TRAINING", "5")["status"] == "queued" and len(runner.submitted) == 1


def test_refusals_are_logged_once_per_reason_and_project(app: LiveApp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="yolo_backend.training")
    for _ in range(30):
        event(app, "START_TRAINING", 8)
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1 and "project 8" in lines[0], lines
    for project in range(2000, 2040):  # many ids: at most RefusalLog.per_minute lines a minute
        event(app, "START_TRAINING", project)
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) <= 20


# -- the bounded queue -----------------------------------------------------------------------------
def test_runs_wait_in_files_and_no_process_starts_while_the_slot_is_taken(tmp_path: Path) -> None:
    app = LiveApp(tmp_path, real_runner=True, train_max_queued=3, train_every_n=2, admin_open=True)
    queue = RunQueue(app.settings.model_dir_path, 3)
    try:
        with locked(app.settings.model_dir_path / "training-slot.lock"):  # a run of another worker trains
            answers = [event(app, "START_TRAINING", p) for p in range(1, 6)]
            assert [a["status"] for a in answers] == ["queued"] * 3 + ["refused"] * 2, answers
            assert "TRAIN_MAX_QUEUED=3" in answers[3]["reason"]
            assert event(app, "START_TRAINING", 1)["status"] == "folded"  # one waiting run per project
            # a refused automatic trigger keeps its changes counted: the next change tries again
            assert [event(app, "ANNOTATION_CREATED", 4)["status"] for _ in range(2)] == ["counted", "refused"]
            status = requests.get(f"{app.url}/training/status", params={"project": 4}, timeout=5).json()
            assert status["changes_since_last_run"] == 2 and status["state"] == "idle"
            assert [entry["project"] for entry in queue.read()["waiting"]] == ["1", "2", "3"]
            assert requests.get(f"{app.url}/training/status", params={"project": 2}, timeout=5).json()["state"] \
                == "queued"
            time.sleep(2.5)  # the queue watcher has looked at least once
            assert training_children() == []
            write_json(queue.path, {"waiting": [], "started": None})  # nothing may start after the test
    finally:
        app.close()


class SleepRunner(LocalRunner):
    """The local runner with ``sleep`` standing in for the training process; records each start."""

    def __init__(self, settings: Settings, seconds: float) -> None:
        self.seconds, self.started = seconds, []  # before LocalRunner's watcher may start anything
        super().__init__(settings, "file:none")

    def _start(self, entry: dict[str, Any]) -> dict[str, Any]:
        child = subprocess.Popen(["sleep", str(self.seconds)])
        self.started.append((entry["run_id"], time.monotonic()))
        threading.Thread(target=lambda: (child.wait(), self.pump()), daemon=True).start()
        return {"pid": child.pid, "host": socket.gethostname(), "start_time": proc_stat(child.pid)[1]}


def queue_settings(tmp_path: Path, cap: int = 8) -> Settings:
    return Settings.from_env({}, model_dir=str(tmp_path / "state"), train_max_queued=cap)


def test_a_queue_left_by_a_dead_worker_is_started_by_the_next_one_one_run_at_a_time(tmp_path: Path) -> None:
    settings = queue_settings(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    waiting = [{"project": str(p), "run_id": f"run-{p}", "source": "file:none", "at": 0.0} for p in (1, 2)]
    write_json(settings.model_dir_path / "training-queue.json",  # as a worker killed mid-way left it
               {"waiting": waiting, "started": {"run_id": "run-0", "pid": gone.pid, "host": socket.gethostname()}})
    runner = SleepRunner(settings, seconds=0.5)  # a fresh worker: its watcher finds the queue
    deadline = time.monotonic() + 10
    while (len(runner.started) < 2 or runner.queue.read()["waiting"]) and time.monotonic() < deadline:
        time.sleep(0.05)  # (a start is recorded in the file just after the process starts)
    assert [run for run, _ in runner.started] == ["run-1", "run-2"]
    assert runner.started[1][1] - runner.started[0][1] >= 0.5, "the second waits for the first to end"
    assert runner.queue.read()["waiting"] == []


def test_workers_pumping_at_once_start_one_process(tmp_path: Path) -> None:
    settings = queue_settings(tmp_path)
    runner = SleepRunner(settings, seconds=3)
    for p in range(3):
        runner.queue.add(str(p), f"run-{p}", "file:none")
    threads = [threading.Thread(target=runner.pump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [run for run, _ in runner.started] == ["run-0"]
    assert runner.alive({"run_id": "run-0", "host": socket.gethostname()})  # started, not yet holding the slot
    assert runner.alive({"run_id": "run-2", "host": socket.gethostname()})  # waiting
    assert not runner.alive({"run_id": "run-9", "host": socket.gethostname()})
    write_json(runner.queue.path, {"waiting": [], "started": runner.queue.read()["started"]})


def test_the_rq_queue_is_capped_too(tmp_path: Path) -> None:
    class Jobs:
        count = 0

        def enqueue(self, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return type("Job", (), {"id": f"job-{self.count}"})()

    settings = queue_settings(tmp_path, cap=2).replace(redis_url="redis://127.0.0.1:9/0")
    runner = RQRunner(settings, "label-studio")
    runner.queue = Jobs()  # type: ignore[assignment]
    assert [runner.submit(str(p), f"run-{p}")["id"] for p in (1, 2)] == ["job-1", "job-2"]
    with pytest.raises(QueueFull, match="TRAIN_MAX_QUEUED=2"):
        runner.submit("3", "run-3")


@pytest.mark.redis
def test_the_rq_queue_of_a_real_redis_holds_at_most_train_max_queued_jobs(
        tmp_path: Path, redis_url: str) -> None:  # noqa: F811  (the fixture imported above)
    app = LiveApp(tmp_path, real_runner=True, redis_url=redis_url, train_max_queued=2)
    try:
        answers = [event(app, "START_TRAINING", p) for p in range(1, 5)]  # no rq worker: the jobs wait
        assert [a["status"] for a in answers] == ["queued", "queued", "refused", "refused"], answers
        assert "TRAIN_MAX_QUEUED=2" in answers[2]["reason"] and "yolo-training" in answers[2]["reason"]
        assert app.backend.trainer.runner.queue.count == 2  # type: ignore[attr-defined]
        assert folders(app) == {"1", "2", "3", "4"}  # known projects: their counts live there
    finally:
        app.close()


# -- the shared secret -----------------------------------------------------------------------------
def test_with_webhook_secret_the_webhook_needs_its_header_or_basic_auth(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = LiveApp(tmp_path, webhook_secret=SECRET, basic_auth_user="ann", basic_auth_pass="b4sic-pass")
    try:
        refused = [post(app, "START_TRAINING", 7),
                   post(app, "START_TRAINING", 7, headers={"X-Webhook-Secret": SECRET[:-1]}),
                   post(app, "START_TRAINING", 7, headers={"X-Webhook-Secret": SECRET + "x"}),
                   post(app, "START_TRAINING", 7, auth=("ann", "wrong"))]
        assert [r.status_code for r in refused] == [401] * 4
        assert "X-Webhook-Secret" in refused[0].json()["message"] and app.runner.submitted == []
        assert post(app, "START_TRAINING", 7, headers={"X-Webhook-Secret": SECRET}).json()["status"] == "queued"
        assert post(app, "START_TRAINING", 7, auth=("ann", "b4sic-pass")).json()["status"] == "folded"
        assert requests.get(f"{app.url}/health", timeout=5).status_code == 200
        assert SECRET not in caplog.text and SECRET[:-1] not in caplog.text
    finally:
        app.close()


def test_basic_auth_alone_does_not_open_a_webhook_secret_without_basic_auth_configured(tmp_path: Path) -> None:
    app = LiveApp(tmp_path, webhook_secret=SECRET)
    try:
        assert post(app, "START_TRAINING", 7, auth=("any", "thing")).status_code == 401
        assert post(app, "START_TRAINING", 7, headers={"X-Webhook-Secret": SECRET}).status_code == 200
    finally:
        app.close()


@pytest.mark.e2e
@pytest.mark.slow
def test_label_studio_reaches_a_secret_webhook_with_basic_auth_and_the_header(
        label_studio, random_model_root: Path, tmp_path: Path) -> None:
    """The Start training button passes by basic auth; annotation events once the header is set in Label Studio."""
    from tests.e2e import projects
    from tests.support.backend_server import start_backend

    env = {"MODEL_ROOT": str(random_model_root), "MODEL_PATH": "yolov5nu.pt", "IMGSZ": "160", "DEVICE": "cpu",
           "RUNTIME": "torch", "LABEL_STUDIO_URL": label_studio.base_url,
           "LABEL_STUDIO_API_KEY": label_studio.legacy_token, "BASIC_AUTH_USER": "ann",
           "BASIC_AUTH_PASS": "b4sic-pass", "WEBHOOK_SECRET": SECRET, "TRAIN_EVERY_N": "100"}
    backend = start_backend(tmp_path / "backend", env)
    auth = ("ann", "b4sic-pass")
    try:
        client = label_studio.client()
        project = projects.create_project(label_studio, "e2e: webhook secret")
        ml = projects.connect_backend(label_studio, project, backend.url, auth_method="BASIC_AUTH",
                                      basic_auth_user="ann", basic_auth_pass="b4sic-pass")

        def status() -> dict[str, Any]:
            return requests.get(f"{backend.url}/training/status", params={"project": project}, auth=auth,
                                timeout=5).json()

        client.ml.train(id=ml.id)  # Start training: START_TRAINING with the backend's basic auth
        assert status()["state"] in ("queued", "running") or status()["last_run"], status()
        assert client.ml.get(id=ml.id).state != "ER", "Label Studio must not mark the backend failed"

        answer = label_studio.api("POST", f"/api/projects/{project}/import", params={"return_task_ids": "true"},
                                  json=[{"data": {"image": "/data/local-files/?d=none.jpg"}}])
        task = answer.json()["task_ids"][0]
        result = [{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 64,
                   "original_height": 64, "value": {"x": 1, "y": 1, "width": 9, "height": 9, "rotation": 0,
                                                    "rectanglelabels": ["square"]}}]
        client.annotations.create(id=task, result=result, project=project)
        assert status()["changes_since_last_run"] == 0, "the webhook without the header is refused"

        hooks = label_studio.api("GET", "/api/webhooks/", params={"project": project}).json()
        (hook,) = [h for h in hooks if h["url"] == f"{backend.url}/webhook"]
        patched = label_studio.api("PATCH", f"/api/webhooks/{hook['id']}/",
                                   json={"headers": {"X-Webhook-Secret": SECRET}})
        assert patched.status_code == 200, patched.text
        client.annotations.create(id=task, result=result, project=project)
        assert status()["changes_since_last_run"] == 1, "with the header set in Label Studio, events count"
        assert SECRET not in backend.log_path.read_text()
    finally:
        backend.stop()
        with contextlib.suppress(ProcessLookupError):  # the run's child, if still going (gunicorn's own group)
            os.killpg(backend.process.pid, signal.SIGKILL)
