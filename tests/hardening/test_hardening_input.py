"""Bad request bodies and label configs against the live app: a clear answer, and the server stays healthy.

Each test is one row of the table in docs/hardening.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image, ImageDraw

from tests.support.live_app import LiveApp, assert_healthy
from tests.support.standin import CAR_CONFIG

CONFIG = CAR_CONFIG
TWO_IMAGES = ('<View><Image name="front" value="$front"/><Image name="back" value="$back"/>'
              '<RectangleLabels name="f" toName="front"><Label value="Car"/></RectangleLabels>'
              '<RectangleLabels name="b" toName="back"><Label value="Car"/></RectangleLabels></View>')


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("input")
    docs = workdir / "docs"
    docs.mkdir()
    img = Image.new("RGB", (100, 50), "white")
    ImageDraw.Draw(img).rectangle((10, 10, 29, 29), fill=(255, 0, 0))
    img.save(docs / "red.png")
    app = LiveApp(workdir, docs, max_request_mb=1, admin_open=True)
    yield app
    app.close()


@pytest.fixture(autouse=True)
def still_healthy(live: LiveApp):
    yield
    assert_healthy(live)


def post(live: LiveApp, path: str, body: Any = None, raw: bytes | str | None = None,
         content_type: str = "application/json") -> requests.Response:
    data = raw if raw is not None else json.dumps(body)
    return requests.post(f"{live.url}{path}", data=data, headers={"Content-Type": content_type}, timeout=10)


def task(task_id: Any = 1, **data: Any) -> dict[str, Any]:
    return {"id": task_id, "data": data or {"image": "/data/local-files/?d=red.png"}}


def assert_error(answer: requests.Response, status: int, kind: str, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == kind
    assert words.lower() in answer.json()["message"].lower(), answer.json()["message"]


@pytest.mark.parametrize("raw, words", [
    ("{", "must be json"),
    ('{"tasks": [{"id": 1, "data": {"image": "/da', "must be json"),
    ("[1, 2]", "json object"),
    ('"tasks"', "json object"),
    (b"\xff\xfe\x00{", "must be json"),
    ("", "must be json"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_malformed_and_truncated_bodies_are_400(live: LiveApp, raw: str | bytes, words: str) -> None:
    for route in ("/predict", "/setup", "/webhook", "/training/rollback"):
        assert_error(post(live, route, raw=raw), 400, "bad_request", words)


def test_json_sent_as_another_content_type_is_400_naming_the_header(live: LiveApp) -> None:
    body = json.dumps({"tasks": [task()], "label_config": CONFIG})
    assert_error(post(live, "/predict", raw=body, content_type="text/plain"), 400, "bad_request", "Content-Type")


def test_a_body_over_max_request_mb_is_413(live: LiveApp) -> None:
    huge = json.dumps({"tasks": [task()] * 20_000, "label_config": CONFIG, "pad": "x" * 2**20})
    assert_error(post(live, "/predict", raw=huge), 413, "too_large", "")
    assert_error(post(live, "/webhook", raw=huge), 413, "too_large", "")


@pytest.mark.parametrize("body, words", [
    ({"tasks": "all", "label_config": CONFIG}, "'tasks' must be a list"),
    ({"tasks": {"id": 1}, "label_config": CONFIG}, "'tasks' must be a list"),
    ({"tasks": [task()], "label_config": 5}, "'label_config' must be a string"),
    ({"tasks": [task()], "label_config": None}, "'label_config' must be a string"),
    ({"label_config": CONFIG}, "missing field 'tasks'"),
    ({"tasks": [task()]}, "missing field 'label_config'"),
    ({"tasks": [task()], "label_config": CONFIG, "params": []}, "'params' must be an object"),
    ({"tasks": [5], "label_config": CONFIG}, "tasks[0] must be an object"),
    ({"tasks": [task(), {"id": 2, "data": "x"}], "label_config": CONFIG}, "tasks[1] must be an object"),
    ({"tasks": [True], "label_config": CONFIG}, "tasks[0]"),
])
def test_wrong_types_are_400_naming_the_field(live: LiveApp, body: dict, words: str) -> None:
    assert_error(post(live, "/predict", body), 400, "bad_request", words)


@pytest.mark.parametrize("route, body, words", [
    ("/setup", {"schema": 7}, "'schema' must be a string"),
    ("/webhook", {"action": ["START_TRAINING"]}, "'action' must be a string"),
    ("/webhook", {"project": 1}, "missing field 'action'"),
    ("/training/rollback", {"project": "1", "version": 3}, "'version' must be a string"),
])
def test_wrong_types_on_other_routes(live: LiveApp, route: str, body: dict, words: str) -> None:
    assert_error(post(live, route, body), 400, "bad_request", words)


def test_an_empty_task_list_gets_an_empty_result_list(live: LiveApp) -> None:
    answer = post(live, "/predict", {"tasks": [], "label_config": CONFIG})
    assert answer.status_code == 200 and answer.json() == {"results": []}


def shown(answer: Any) -> int | None:
    """Regions of a task's prediction; None for ``[]``, no prediction (a failed task: Label Studio stores nothing)."""
    return None if answer == [] else len(answer["result"])


def test_duplicate_task_ids_each_get_their_own_result(live: LiveApp) -> None:
    answer = post(live, "/predict", {"tasks": [task(7), task(7), task(7)], "label_config": CONFIG})
    assert answer.status_code == 200
    assert [len(r["result"]) for r in answer.json()["results"]] == [1, 1, 1]


def test_tasks_without_the_image_field(live: LiveApp) -> None:
    single = post(live, "/predict", {"tasks": [task(1, text="hello")], "label_config": CONFIG})
    assert_error(single, 422, "media", "no image URL")
    mixed = post(live, "/predict", {"tasks": [task(1), task(2, text="x"), task(3, image=None), task(4, image=42),
                                              task(5)], "label_config": CONFIG})
    assert mixed.status_code == 200
    assert [shown(r) for r in mixed.json()["results"]] == [1, None, None, None, 1]


@pytest.mark.parametrize("config, words", [
    ('<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>',
     "needs a <RectangleLabels>"),
    ('<View><RectangleLabels name="l" toName="img"><Label value="Car"/></RectangleLabels></View>', "nothing"),
    ("<View><Image", "could not be parsed"),
    ("not xml at all", ""),
    ("", "empty"),
    ('<View><Image name="i" value="$image"/><RectangleLabels name="l" toName="i" model_score_threshold="high">'
     '<Label value="Car"/></RectangleLabels></View>', "not a number"),
])
def test_label_configs_without_a_usable_image_control_are_400(live: LiveApp, config: str, words: str) -> None:
    answer = post(live, "/predict", {"tasks": [task()], "label_config": config})
    assert_error(answer, 400, "label_config", words)
    assert_error(post(live, "/setup", {"schema": config}), 400, "label_config", words)


def test_several_images_per_task_are_each_predicted(live: LiveApp) -> None:
    red = "/data/local-files/?d=red.png"
    missing = "/data/local-files/?d=missing.png"
    answer = post(live, "/predict", {"tasks": [task(1, front=red, back=red), task(2, front=red, back=missing)],
                                     "label_config": TWO_IMAGES})
    assert answer.status_code == 200
    first, second = answer.json()["results"]
    assert sorted(r["to_name"] for r in first["result"]) == ["back", "front"]
    assert [r["to_name"] for r in second["result"]] == ["front"], "the readable image is still predicted"


def test_unknown_tags_are_ignored_when_a_usable_control_exists(live: LiveApp) -> None:
    config = CONFIG.replace("</View>", '<Sparkle name="s" toName="image"/><Header value="x"/></View>')
    answer = post(live, "/predict", {"tasks": [task()], "label_config": config})
    assert answer.status_code == 200 and len(answer.json()["results"][0]["result"]) == 1


def test_model_path_in_a_label_config_cannot_leave_model_root(live: LiveApp) -> None:
    for path in ("/etc/passwd", "../../../etc/passwd", "%2e%2e/x.pt", "x.pt\x00.png"):
        config = CONFIG.replace('toName="image"', f'toName="image" model_path="{path}"')
        answer = post(live, "/predict", {"tasks": [task()], "label_config": config})
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"] in ("model_path", "label_config")


@pytest.mark.parametrize("project", ["../x", {"id": "../../etc"}, [1, 2], "", {"id": None}, "1/2", "a b"])
def test_webhook_project_ids_that_are_not_ids_are_400(live: LiveApp, project: Any) -> None:
    answer = post(live, "/webhook", {"action": "START_TRAINING", "project": project})
    assert answer.status_code == 400 and answer.json()["error"] == "bad_request"
    assert not [p for p, _ in live.runner.submitted if not p.isalnum()]


def test_unknown_webhook_actions_are_acknowledged_and_ignored(live: LiveApp) -> None:
    answer = post(live, "/webhook", {"action": "SOMETHING_NEW", "project": {"id": 1}})
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"


@pytest.mark.skipif(sys.platform != "linux", reason="glibc resolver behaviour")
def test_other_tasks_of_a_request_survive_every_bad_task(live: LiveApp, tmp_path: Path) -> None:
    bad = ["http://169.254.169.254/latest/", "/data/local-files/?d=../../etc/passwd", "/data/local-files/?d=nope.png",
           "ftp://x/y.png", "s3://bucket/key.png", "http://[::1]:1/", "/data/local-files/?d=%00", "", "javascript:x"]
    tasks = [task(0)] + [task(i + 1, image=url) for i, url in enumerate(bad)] + [task(99)]
    answer = post(live, "/predict", {"tasks": tasks, "label_config": CONFIG})
    assert answer.status_code == 200
    counts = [shown(r) for r in answer.json()["results"]]
    assert counts == [1] + [None] * len(bad) + [1]
