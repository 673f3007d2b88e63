"""The collect step against a real Label Studio: its API's tasks are what the pipeline trains on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.shapes_project import LABEL_CONFIG, write_project
from yolo_backend.config import Settings
from yolo_backend.formats.ls_tasks import chosen_annotation
from yolo_backend.training.collect import fetch_from_label_studio
from yolo_backend.training.dataset import build_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_annotated_tasks_come_from_the_api_with_either_token(tmp_path: Path, label_studio) -> None:
    ls = label_studio.client()
    project = ls.projects.create(title="training collect", label_config=LABEL_CONFIG)
    folder = f"collect-{project.id}"
    made = write_project(label_studio.document_root, 4, seed=7000, folder=folder)
    ids = []
    for task in made:
        created = ls.tasks.create(project=project.id, data=task["data"])
        ids.append(created.id)
    results = [t["annotations"][0]["result"] for t in made]
    ls.annotations.create(id=ids[0], result=results[0])
    ls.annotations.create(id=ids[1], result=results[1])
    ls.annotations.create(id=ids[1], result=[], was_cancelled=True)  # skipped: must not count
    ls.annotations.create(id=ids[2], result=[], was_cancelled=True)  # only skipped: no training example
    # ids[3] has no annotation at all

    for key in (label_studio.legacy_token, label_studio.personal_access_token()):
        settings = Settings.from_env({}, label_studio_url=label_studio.base_url, label_studio_api_key=key,
                                     model_root=str(tmp_path), model_dir=str(tmp_path / "state"),
                                     local_files_document_root=str(label_studio.document_root))
        data = fetch_from_label_studio(settings, str(project.id))
        assert "RectangleLabels" in data.label_config
        by_id = {t["id"]: t for t in data.tasks}
        assert set(ids) <= set(by_id)
        assert chosen_annotation(by_id[ids[3]]) is None  # no annotation at all
        assert chosen_annotation(by_id[ids[1]])["result"] == results[1]
        assert chosen_annotation(by_id[ids[2]]) is None

    dataset = build_dataset(tmp_path / "ds", data.tasks, data.label_config, settings)
    examples = sorted(dataset.train + dataset.holdout, key=lambda e: e.task_id)
    assert [e.task_id for e in examples] == ids[:2]
    assert len(examples[0].lines) == len(results[0])
