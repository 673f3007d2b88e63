"""Label Studio's ML backend protocol, through the Flask app, with a stand-in detector."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Callable

import pytest
from flask.testing import FlaskClient
from PIL import Image, ImageDraw

from model import YOLOBackend
from tests.support.standin import CAR_CONFIG, ColorBlobDetector, standin_store
from yolo_backend.config import Settings
from yolo_backend.web.http_api import create_app

CONFIG = CAR_CONFIG


def red_square(path: Path, size: tuple[int, int] = (200, 100), box: tuple = (20, 10, 60, 50)) -> None:
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(255, 0, 0))
    img.save(path)


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    red_square(folder / "a.png")
    red_square(folder / "b.png", size=(100, 100), box=(50, 50, 100, 100))
    Image.new("RGB", (50, 50), "white").save(folder / "empty.png")
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    return folder


@pytest.fixture()
def make_client(tmp_path: Path, docs: Path) -> Callable[..., tuple[FlaskClient, ColorBlobDetector, YOLOBackend]]:
    backends: list[YOLOBackend] = []

    def make(load_seconds: float = 0.0, start: bool = True, **overrides: Any):
        settings = Settings.from_env({}, model_root=str(tmp_path / "models"), model_dir=str(tmp_path / "state"),
                                     local_files_document_root=str(docs), **overrides)
        store, detector = standin_store(settings, load_seconds=load_seconds)
        backend = YOLOBackend(settings, store=store)
        backends.append(backend)
        if start:
            store.start(background=True)
        return create_app(backend).test_client(), detector, backend

    yield make
    for backend in backends:
        backend.close()


def task(task_id: int, name: str) -> dict[str, Any]:
    return {"id": task_id, "data": {"image": f"/data/local-files/?d={name}"}}


def predict(client: FlaskClient, tasks: list, **extra: Any):
    return client.post("/predict", json={"tasks": tasks, "label_config": CONFIG, "project": "3.1700000000", **extra})


def test_health_and_setup_answer_at_once_while_the_model_loads(make_client) -> None:
    client, _, _backend = make_client(load_seconds=30)  # the load is held for 30 s: a limit no answer reaches
    health = client.get("/health")
    setup = client.post("/setup", json={"project": "3.1700000000", "schema": CONFIG})
    assert health.status_code == 200 and health.json["status"] == "UP"
    assert health.json["model_state"] == "loading"
    assert setup.status_code == 200 and setup.json["model_version"].startswith("yolov5nu-")
    assert client.get("/health").json["model_state"] == "loading", "both answered while the load was still held"
    assert client.get("/").json["status"] == "UP"


def test_predict_waits_a_bounded_time_then_answers_503(make_client, ) -> None:
    client, _, _ = make_client(load_seconds=30, load_wait_seconds=0.3)
    answer = predict(client, [task(1, "a.png")])
    assert answer.status_code == 503 and answer.json["error"] == "model_not_ready"
    assert "loading" in answer.json["message"]


def test_predict_returns_one_result_per_task_in_order(make_client) -> None:
    client, detector, _ = make_client(task_score="mean")  # the mean region score (uncertainty: test_uncertainty)
    answer = predict(client, [task(1, "a.png"), task(2, "empty.png"), task(3, "b.png")])
    assert answer.status_code == 200
    results = answer.json["results"]
    assert len(results) == 3
    first = results[0]["result"]
    assert [r["value"]["rectanglelabels"] for r in first] == [["Car"]]
    assert first[0]["value"] | {} == {"x": 10.0, "y": 10.0, "width": 20.0, "height": 40.0, "rotation": 0,
                                      "rectanglelabels": ["Car"]}
    assert (first[0]["original_width"], first[0]["original_height"]) == (200, 100)
    assert results[1]["result"] == [] and results[1]["score"] == 0.0
    assert results[2]["result"][0]["value"]["x"] == 50.0
    assert results[0]["score"] == 0.9
    assert {r["model_version"] for r in results} == {results[0]["model_version"]}
    assert results[0]["model_version"].startswith("yolov5nu-")
    assert sum(detector.calls) == 3


def test_one_bad_image_costs_only_its_own_task(make_client) -> None:
    client, _, _ = make_client(admin_open=True)  # it reads /metrics
    answer = predict(client, [task(1, "a.png"), task(2, "broken.png"), task(3, "../secret.png"),
                              {"id": 4, "data": {}}])
    assert answer.status_code == 200
    results = answer.json["results"]
    assert len(results[0]["result"]) == 1
    assert results[1:] == [[], [], []]  # no prediction: Label Studio stores nothing, opening them tries again
    metrics = client.get("/metrics").data.decode()
    assert 'yolo_backend_tasks_predicted_total{outcome="failed"} 3.0' in metrics
    assert 'yolo_backend_errors_total{kind="media_denied"} 1.0' in metrics


def test_single_task_failure_answers_the_reason(make_client) -> None:
    client, _, _ = make_client()
    answer = predict(client, [task(1, "broken.png")])
    assert answer.status_code == 422 and answer.json["error"] == "media"
    assert "image" in answer.json["message"]
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("body, message", [
    ("not json", "must be JSON"),
    ([1, 2], "JSON object"),
    ({"label_config": CONFIG}, "missing field 'tasks'"),
    ({"tasks": {"id": 1}, "label_config": CONFIG}, "'tasks' must be a list"),
    ({"tasks": [], "label_config": 5}, "'label_config' must be a string"),
    ({"tasks": ["x"], "label_config": CONFIG}, "tasks[0]"),
    ({"tasks": [], "label_config": CONFIG, "params": []}, "'params'"),
    ({"tasks": [], "label_config": "<View></View>"}, "nothing to predict"),
])
def test_malformed_predict_requests_get_400_with_the_reason(make_client, body: Any, message: str) -> None:
    client, _, _ = make_client()
    if isinstance(body, str):
        answer = client.post("/predict", data=body, content_type="application/json")
    else:
        answer = client.post("/predict", json=body)
    assert answer.status_code == 400, answer.json
    assert message in answer.json["message"]


def test_empty_task_list_is_an_empty_answer(make_client) -> None:
    client, _, _ = make_client()
    assert predict(client, []).json == {"results": []}


def test_setup_rejects_a_config_without_anything_to_predict(make_client) -> None:
    client, _, _ = make_client()
    answer = client.post("/setup", json={"project": "1.1", "schema": "<View><Text name='t' value='$t'/></View>"})
    assert answer.status_code == 400 and "RectangleLabels" in answer.json["message"]
    assert client.post("/setup", json={"project": "1.1"}).status_code == 400


def test_model_path_outside_model_root_is_refused(make_client) -> None:
    client, _, _ = make_client()
    for bad in ("/etc/passwd", "../state/x.pt", "sub/../../x.pt"):
        config = CONFIG.replace('toName="image"', f'toName="image" model_path="{bad}"')
        answer = client.post("/predict", json={"tasks": [task(1, "a.png")], "label_config": config})
        assert answer.status_code == 400 and answer.json["error"] == "model_path", bad


def test_model_skip_and_thresholds(make_client) -> None:
    client, _, _ = make_client()
    high = CONFIG.replace('toName="image"', 'toName="image" model_score_threshold="0.95"')
    assert predict(client, [task(1, "a.png")], label_config=high).json["results"][0]["result"] == []
    low = CONFIG.replace('toName="image"', 'toName="image" model_score_threshold="0.85"')
    assert len(predict(client, [task(1, "a.png")], label_config=low).json["results"][0]["result"]) == 1
    skip = CONFIG.replace('toName="image"', 'toName="image" model_skip="true"')
    assert predict(client, [task(1, "a.png")], label_config=skip).status_code == 400


def test_env_threshold_applies_without_per_control_value(make_client) -> None:
    client, _, _ = make_client(model_score_threshold=0.95)
    assert predict(client, [task(1, "a.png")]).json["results"][0]["result"] == []


def test_without_weights_predictions_are_empty_and_untrained(tmp_path: Path, docs: Path) -> None:
    settings = Settings.from_env({}, model_root=str(tmp_path / "empty"), model_dir=str(tmp_path / "s"),
                                 local_files_document_root=str(docs))
    backend = YOLOBackend(settings)
    backend.store.start(background=False)
    client = create_app(backend).test_client()
    health = client.get("/health").json
    assert health["model_state"] == "no_weights" and "no weights" in health["message"]
    answer = predict(client, [task(1, "a.png")])
    assert answer.json["results"] == [{"result": [], "score": 0.0, "model_version": "untrained"}]
    backend.close()


AUTH = {"Authorization": "Basic " + base64.b64encode(b"ann:s3cret").decode()}


def test_basic_auth_protects_everything_but_health_and_webhook(make_client) -> None:
    client, _, _ = make_client(basic_auth_user="ann", basic_auth_pass="s3cret")
    assert client.get("/health").status_code == 200
    assert predict(client, [task(1, "a.png")]).status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.post("/setup", json={"schema": CONFIG}).status_code == 401
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ann:nope").decode()}
    assert client.get("/versions", headers=wrong).status_code == 401
    assert client.get("/health", headers=wrong).status_code == 401  # Label Studio then says "authentication"
    assert client.post("/setup", json={"schema": CONFIG, "project": "1.1"}, headers=AUTH).status_code == 200
    assert client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 1}}).status_code == 200


def test_webhook_acknowledges_events_and_validates_them(make_client) -> None:
    client, _, _ = make_client()
    for action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "START_TRAINING",
                   "PROJECT_UPDATED"):
        answer = client.post("/webhook", json={"action": action, "project": {"id": 4}, "annotation": {"id": 1}})
        # acknowledged at once: this service has no trainer, so nothing runs inside the request
        assert answer.status_code == 200 and answer.json == {"status": "ignored",
                                                             "reason": "training is not enabled in this service"}
    assert client.post("/webhook", json={"action": "SOMETHING_ELSE", "project": {"id": 4}}).json["status"] == "ignored"
    assert client.post("/webhook", json={"project": {"id": 4}}).status_code == 400
    assert client.post("/webhook", json={"action": "START_TRAINING"}).status_code == 400


def test_versions_and_metrics(make_client) -> None:
    client, _, _ = make_client(admin_open=True)  # /metrics is an admin route
    predict(client, [task(1, "a.png")])
    versions = client.get("/versions").json["versions"]
    assert len(versions) == 1 and versions[0].startswith("yolov5nu-")
    text = client.get("/metrics").data.decode()
    for name in ("yolo_backend_requests_total", "yolo_backend_request_seconds_bucket",
                 "yolo_backend_inference_seconds_count", 'yolo_backend_tasks_predicted_total{outcome="ok"} 1.0'):
        assert name in text


def test_oversized_body_is_413(make_client) -> None:
    client, _, _ = make_client(max_request_mb=1)
    answer = client.post("/predict", data=b"{" + b" " * (2 * 2**20) + b"}", content_type="application/json")
    assert answer.status_code == 413 and answer.json["error"] == "too_large"


def test_unexpected_errors_do_not_leak_tracebacks(make_client) -> None:
    client, detector, _ = make_client()

    def explode(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("secret internal detail")

    detector.detect = explode  # type: ignore[method-assign]
    answer = predict(client, [task(1, "a.png")])
    assert answer.status_code == 500 and "secret" not in answer.json["message"]
    assert "ref" in answer.json["message"]
    assert client.get("/health").status_code == 200
