"""``yolo-ls review`` against a real Label Studio: flagged tasks come back through the Data Manager, worst first."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from tests.support.shapes_project import LABEL_CONFIG, region, write_project
from tests.support.synthetic import Shape
from yolo_backend.cli import main
from yolo_backend.labelstudio import ls_client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def corrupted_tasks(document_root: Path) -> tuple[list[dict], dict[int, str]]:
    """16 annotated shape images; three get an error: a box removed, a class flipped, a box on background.

    The image URLs are local-files URLs under ``document_root``, as Label Studio serves them.
    """
    tasks = write_project(document_root, 16, seed=81_000, folder=f"review-{uuid.uuid4().hex[:6]}")
    wrong = {1: "missed", 5: "wrong_class", 9: "spurious"}
    for index, kind in wrong.items():
        results = tasks[index]["annotations"][0]["result"]
        if kind == "missed":
            results.pop()
        elif kind == "wrong_class":
            value = results[0]["value"]
            value["rectanglelabels"] = ["circle" if value["rectanglelabels"] == ["square"] else "square"]
        else:
            results.append(region(Shape(0, _free_spot(tasks[index]["_truth"])), 256, 256))
    for task in tasks:
        del task["id"], task["_truth"], task["annotations"][0]["id"]
    return tasks, {index: kind for index, kind in wrong.items()}


def _free_spot(truth: list) -> tuple[int, int, int, int]:
    """A 48 px square on background: the first corner of a coarse grid clear of every shape."""
    for x in range(0, 208, 16):
        for y in range(0, 208, 16):
            box = (x, y, x + 48, y + 48)
            if all(box[2] + 8 <= b[0] or b[2] + 8 <= x or box[3] + 8 <= b[1] or b[3] + 8 <= y for _, b in truth):
                return box
    raise AssertionError("no free spot on the image")


def dm_tasks(label_studio, project: int, version: str, text: str | None = None) -> list[dict]:
    """The Data Manager's list: tasks holding the review version (and ``text`` in a prediction), by prediction score."""
    items = [{"filter": "filter:tasks:predictions_model_versions", "operator": "contains", "type": "List",
              "value": version}]
    if text:
        items.append({"filter": "filter:tasks:predictions_results", "operator": "contains", "type": "String",
                      "value": text})
    query = {"filters": {"conjunction": "and", "items": items}, "ordering": ["tasks:predictions_score"]}
    answer = label_studio.api("GET", "/api/tasks/", params={"project": project, "fields": "all",
                                                             "query": json.dumps(query), "page_size": 100})
    assert answer.status_code == 200, answer.text[:300]
    return answer.json()["tasks"]


def test_review_stores_flags_that_the_data_manager_returns_worst_first(label_studio, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys) -> None:
    from tests.support.trained_model import trained_shapes_model

    start = trained_shapes_model()  # cached; trained on other generated images, as COCO weights would be
    client = label_studio.client()
    project = client.projects.create(title=f"review {uuid.uuid4().hex[:6]}", label_config=LABEL_CONFIG).id
    tasks, wrong = corrupted_tasks(label_studio.document_root)
    ls_client.import_tasks(client, project, tasks)
    ids = sorted(t.id for t in client.tasks.list(project=project, include="id"))  # import keeps the order
    corrupted = {ids[index]: kind for index, kind in wrong.items()}
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "state"))
    command = ["review", "--project", str(project), "--url", label_studio.base_url, "--api-key",
               label_studio.legacy_token, "--document-root", str(label_studio.document_root), "--start", str(start),
               "--folds", "2", "--epochs", "2", "--imgsz", "160", "--work", str(tmp_path / "review")]

    assert main(command) == 0
    summary = capsys.readouterr().out
    version = re.search(r"review version (review-2fold-[0-9a-f]{8}): 16 of 16 annotated tasks", summary).group(1)
    assert f"selected model version is now {version} (was '';" in summary
    assert client.projects.get(id=project).model_version == version
    stored = int(re.search(r"(\d+) predictions stored", summary).group(1))

    listed = dm_tasks(label_studio, project, version)
    assert len(listed) == stored > 0
    scores = [next(p["score"] for p in task["predictions"] if p["model_version"] == version) for task in listed]
    assert scores == sorted(scores) and [t["predictions_score"] for t in listed] == pytest.approx(scores)
    flagged = {task["id"]: task for task in listed}
    # Fold models of 2 epochs on 8 images are unsure, and how unsure differs between CPUs and runs (on an Intel
    # Xeon the flipped circle came out as square 0.46 / circle 0.32, so its label did not look wrong): this test
    # is about what Label Studio stores and returns; how well flags find errors is bench_review.py's and the
    # flag rules' unit tests' (test_review.py). Two of the three errors must be caught, each as its kind.
    caught = {task_id: kind for task_id, kind in corrupted.items() if task_id in flagged}
    assert len(caught) >= 2, f"corrupted {corrupted}, flagged {sorted(flagged)}"
    # And few false flags: of the 13 clean tasks at most as many flagged as there are errors (3), each named
    # with what it was flagged for. The shapes here are 32-96 px, the easy case of bench_review.py's report.
    false = {task_id: [r["meta"]["text"][0] for p in task["predictions"] if p["model_version"] == version
                       for r in p["result"]] for task_id, task in flagged.items() if task_id not in corrupted}
    assert len(false) <= len(corrupted), f"clean tasks flagged: {false}"
    issue = {"missed": "missed object", "wrong_class": "wrong class", "spurious": "box where there is nothing"}
    for task_id, kind in caught.items():
        [review] = [p for p in flagged[task_id]["predictions"] if p["model_version"] == version]
        texts = [r["meta"]["text"][0] for r in review["result"]]
        assert any(text.startswith(issue[kind] + ":") for text in texts), texts
        assert all(r["type"] == "rectanglelabels" and r["from_name"] == "label" for r in review["result"])
        assert task_id in {t["id"] for t in dm_tasks(label_studio, project, version, f"{issue[kind]}:")}

    assert main(command) == 0  # a second run: the fold models are kept, every flagged task already holds the version
    assert f"0 predictions stored, {stored} skipped (already stored)" in capsys.readouterr().out
    assert len(dm_tasks(label_studio, project, version)) == stored
