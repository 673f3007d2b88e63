"""What /predict, /bulk/status and /bulk/cancel do with the jobs in the ledger (Flask app, stand-in detector)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image, ImageDraw

from model import YOLOBackend
from tests.support.standin import CAR_CONFIG, standin_store
from yolo_backend.bulk import BulkJobs
from yolo_backend.config import Settings
from yolo_backend.web.http_api import create_app


@pytest.fixture()
def app(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    img = Image.new("RGB", (200, 100), "white")
    ImageDraw.Draw(img).rectangle((20, 10, 59, 49), fill=(255, 0, 0))
    img.save(docs / "a.png")
    # a Label Studio to store into (never reached here: no job is started), and basic auth off but admin open
    settings = Settings.from_env({}, model_root=str(tmp_path / "models"), model_dir=str(tmp_path / "state"),
                                 local_files_document_root=str(docs), label_studio_url="http://127.0.0.1:9",
                                 label_studio_api_key="k" * 40, admin_open=True)
    store, _ = standin_store(settings)
    backend = YOLOBackend(settings, store=store)
    store.start(background=False)
    bulk = BulkJobs(settings)
    yield create_app(backend, bulk).test_client(), bulk
    backend.close()


def task(task_id: int) -> dict:
    return {"id": task_id, "data": {"image": "/data/local-files/?d=a.png"}}


def predict(client: FlaskClient, tasks: list[dict]) -> list:
    answer = client.post("/predict", json={"tasks": tasks, "label_config": CAR_CONFIG, "project": "5.1700000000"})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["results"]


def test_tasks_a_running_job_holds_are_answered_empty_and_not_queued_again(app) -> None:
    client, bulk = app
    job = bulk.ledger.create("5", "v", CAR_CONFIG, [task(1), task(2)], chunk_size=8, origin="retrieve")
    assert job is not None
    results = predict(client, [task(1), task(2), task(3)])  # Retrieve predictions clicked again
    assert results[:2] == [[], []]  # Label Studio stores nothing for these: the job will
    assert [r["value"]["rectanglelabels"] for r in results[2]["result"]] == [["Car"]]
    assert [j.id for j in bulk.ledger.jobs("5")] == [job.id]


def test_an_opened_task_is_taken_from_its_job_and_predicted(app) -> None:
    client, bulk = app
    job = bulk.ledger.create("5", "v", CAR_CONFIG, [task(1), task(2)], chunk_size=8, origin="retrieve")
    assert job is not None
    [result] = predict(client, [task(2)])
    assert result["result"], "opened: answered here"
    assert bulk.ledger.held("5", [1, 2]) == {1: "queued"}
    assert bulk.ledger.progress(job.id)["opened"] == 1


def test_status_and_cancel(app) -> None:
    client, bulk = app
    job = bulk.ledger.create("5", "v", CAR_CONFIG, [task(1), task(2)], chunk_size=8, origin="prelabel")
    assert job is not None
    status = client.get("/bulk/status?project=5").get_json()
    assert status["runner"] == "local" and [(j["job"], j["state"], j["left"]) for j in status["jobs"]] == \
        [(job.id, "running", 2)]
    cancelled = client.post("/bulk/cancel", json={"job": job.id}).get_json()["jobs"][0]
    assert (cancelled["state"], cancelled["cancelled"], cancelled["left"]) == ("cancelled", 2, 0)
    assert predict(client, [task(1)])[0]["result"], "a cancelled job's task is predicted on open again"
    unknown = client.post("/bulk/cancel", json={"job": "nope"})
    assert unknown.status_code == 400 and "no bulk job nope" in unknown.get_json()["message"]
    assert client.get("/bulk/status").status_code == 400


def test_a_job_whose_chunks_cannot_be_queued_yet_still_answers_label_studio(tmp_path: Path) -> None:
    """Redis away: /predict answers what it predicted and [] for the rest; the job waits for the watcher to offer."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    docs = tmp_path / "docs"
    docs.mkdir()
    Image.new("RGB", (64, 64), "white").save(docs / "a.png")
    settings = Settings.from_env({}, model_root=str(tmp_path / "models"), model_dir=str(tmp_path / "state"),
                                 local_files_document_root=str(docs), label_studio_url="http://127.0.0.1:9",
                                 label_studio_api_key="k" * 40, redis_url=f"redis://127.0.0.1:{port}/0",
                                 predict_budget_seconds=0.001)
    store, _ = standin_store(settings)
    backend = YOLOBackend(settings, store=store)
    store.start(background=False)
    bulk = BulkJobs(settings)
    try:
        results = predict(create_app(backend, bulk).test_client(), [task(i) for i in range(1, 13)])
        assert [r == [] for r in results] == [False] * 8 + [True] * 4  # the first slice, then the budget was spent
        [job] = bulk.ledger.jobs("5")
        assert job.total == 4 and bulk.ledger.open_chunks(job.id)
    finally:
        for job in bulk.ledger.jobs("5"):
            bulk.ledger.cancel(job.id)  # the watcher ends with the job
        backend.close()


def test_a_task_whose_image_fails_among_many_gets_no_prediction_so_opening_it_tries_again(app) -> None:
    client, _ = app
    broken = {"id": 8, "data": {"image": "/data/local-files/?d=gone.png"}}
    results = predict(client, [task(7), broken, task(9)])
    assert results[1] == []  # Label Studio stores nothing: no empty prediction hides the task from the next try
    assert results[0]["result"] and results[2]["result"]
    answer = client.post("/predict", json={"tasks": [broken], "label_config": CAR_CONFIG, "project": "5.1700000000"})
    assert answer.status_code >= 400 and "gone.png" in answer.get_json()["message"]  # opened: the reason, shown
