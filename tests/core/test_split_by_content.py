"""The same picture in two tasks (a re-import) lands on one side of every split.

Training's holdout and val, ``yolo-ls export-yolo``'s val and test, and the review's folds
are all built from real files here: each picture of a generated project is imported again
as a new task under another file name, and no split may put the two copies apart (a copy
that trains the candidate would then judge it).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.shapes_project import LABEL_CONFIG, write_project
from yolo_backend.config import Settings
from yolo_backend.formats.yolo_export import ExportOptions, write_dataset
from yolo_backend.media.fetcher import MediaFetcher
from yolo_backend.review.folds import assign
from yolo_backend.training.dataset import build_dataset, training_control
from yolo_backend.training.image_dataset import collect_examples

PICTURES = 40  # by task id, about a third of the 40 pairs would cross a 20 % holdout


def reimported(doc_root: Path) -> list[dict[str, Any]]:
    """40 annotated tasks, then each picture again as a new task (id + 1000) under a new file name."""
    tasks = write_project(doc_root, PICTURES, size=(64, 64), max_shapes=1)
    again = []
    for task in tasks:
        name = parse_qs(urlsplit(task["data"]["image"]).query)["d"][0]
        copy = name.replace("img-", "again-")
        shutil.copyfile(doc_root / name, doc_root / copy)
        again.append({**task, "id": task["id"] + 1000, "data": {"image": f"/data/local-files/?d={copy}"}})
    return tasks + again


def settings_for(tmp_path: Path) -> Settings:
    return Settings.from_env({}, model_root=str(tmp_path / "root"), model_dir=str(tmp_path / "state"),
                             local_files_document_root=str(tmp_path / "docroot"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_apart(parts: dict[str, set[str]]) -> None:
    """No picture (by the digest of its bytes) in two parts."""
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not parts[a] & parts[b], f"{len(parts[a] & parts[b])} pictures in both {a} and {b}"


def test_training_holdout_and_val_keep_a_reimported_picture_on_one_side(tmp_path: Path) -> None:
    tasks = reimported(tmp_path / "docroot")
    dataset = build_dataset(tmp_path / "dataset", tasks, LABEL_CONFIG, settings_for(tmp_path))
    assert len(dataset.holdout) >= 5 and dataset.val and dataset.train
    assert_apart({part: {digest(e.image) for e in getattr(dataset, part)} for part in ("train", "val", "holdout")})


def test_the_exports_val_and_test_keep_a_reimported_picture_in_one_split(tmp_path: Path) -> None:
    doc_root = tmp_path / "docroot"
    tasks = reimported(doc_root)
    report = write_dataset(tasks, tmp_path / "out", ["square", "circle"],
                           lambda url, tid: doc_root / parse_qs(urlsplit(url).query)["d"][0],
                           ExportOptions(val=0.2, test=0.15))
    assert report.splits["val"] and report.splits["test"] and report.splits["train"]
    assert_apart({name: {digest(p) for p in (tmp_path / "out" / "images" / name).iterdir()}
                  for name in ("train", "val", "test")})


def test_review_folds_keep_a_reimported_picture_in_one_fold(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    examples, _ = collect_examples(reimported(tmp_path / "docroot"), training_control(LABEL_CONFIG), settings,
                                   MediaFetcher.from_settings(settings))
    folds = assign(examples, 4)
    assert sorted(len(f) for f in folds)[-1] - sorted(len(f) for f in folds)[0] <= 2  # still about equal
    assert_apart({f"fold {i}": {digest(e.image) for e in fold} for i, fold in enumerate(folds)})
