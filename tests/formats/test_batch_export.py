"""Label Studio annotations -> YOLO dataset, and the full round trip folder -> tasks -> folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from tests.support.synthetic import write_yolo_dataset
from yolo_backend.cli import main
from yolo_backend.core.split import split
from yolo_backend.formats import convert
from yolo_backend.formats.yolo_export import ExportOptions, chosen_annotation, split_names, write_dataset
from yolo_backend.formats.yolo_folder import find_samples, read_labels
from yolo_backend.training.examples import Example, carve_val


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def labels_by_image(root: Path) -> dict[str, list[convert.YoloBox]]:
    """Image content hash -> its boxes, so folders can be compared whatever the file names."""
    return {digest(s.image): sorted((b for b, _ in read_labels(s.label)), key=lambda b: (b.cx, b.cy))
            for s in find_samples(root) if s.label}


@pytest.mark.parametrize("kind", ["rectanglelabels", "polygonlabels"])
def test_round_trip_reproduces_labels(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "files" / "ds"
    write_yolo_dataset(source, 12, 4, seed=5)
    tasks = tmp_path / "tasks.json"
    assert main(["import-yolo", str(source), "--document-root", str(tmp_path / "files"), "--as", "annotations",
                 "--type", kind, "-o", str(tasks)]) == 0
    out = tmp_path / "out"
    assert main(["export-yolo", "--from-file", str(tasks), "--document-root", str(tmp_path / "files"),
                 "--classes", "square,circle", "-o", str(out)]) == 0

    want, got = labels_by_image(source), labels_by_image(out)
    assert set(got) == set(want) and len(got) == 16
    for key, boxes in want.items():
        assert len(got[key]) == len(boxes)
        for a, b in zip(got[key], boxes):
            assert a.class_id == b.class_id
            assert max(abs(a.cx - b.cx), abs(a.cy - b.cy), abs(a.w - b.w), abs(a.h - b.h)) <= 1e-4
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "square", 1: "circle"} and data["path"] == str(out.resolve())
    assert (out / data["train"]).is_dir() and (out / data["val"]).is_dir()


def task(tid: int, annotations: list[dict], url: str = "/data/local-files/?d=a.png") -> dict:
    return {"id": tid, "data": {"image": url}, "annotations": annotations}


def box(label: str, x: float = 10, y: float = 20, w: float = 30, h: float = 40) -> dict:
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]}}


def test_chosen_annotation_skips_cancelled_and_prefers_ground_truth() -> None:
    skipped = {"id": 1, "was_cancelled": True, "result": [box("a")]}
    older = {"id": 2, "updated_at": "2024-01-01", "result": [box("a")]}
    newer = {"id": 3, "updated_at": "2024-02-01", "result": [box("b")]}
    truth = {"id": 4, "updated_at": "2023-01-01", "ground_truth": True, "result": []}
    assert chosen_annotation(task(1, [skipped])) is None
    assert chosen_annotation(task(1, [skipped, older, newer])) is newer
    assert chosen_annotation(task(1, [older, truth, newer])) is truth


def test_export_leaves_out_skipped_and_unannotated_tasks(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    tasks = [
        task(1, [{"id": 1, "result": [box("cat"), box("dog", 50, 50, 10, 10)]}]),
        task(2, [{"id": 2, "was_cancelled": True, "result": [box("cat")]}]),
        task(3, []),
        task(4, [{"id": 4, "result": []}]),  # annotated as "nothing here": an empty label file
        task(5, [{"id": 5, "result": [box("cat")]}], url="/data/local-files/?d=missing.png"),
    ]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    out = tmp_path / "out"
    assert main(["export-yolo", "--from-file", str(export), "--document-root", str(tmp_path), "--val", "0",
                 "-o", str(out)]) == 0
    labels = {p.name: p.read_text().count("\n") for p in (out / "labels" / "train").iterdir()}
    assert len(labels) == 2 and labels.pop("a.txt") == 2  # task 1; task 4 has the same file name: renamed
    [(renamed, count)] = labels.items()
    assert count == 0 and (out / "images" / "train" / renamed.replace(".txt", ".png")).is_file()
    assert (out / "classes.txt").read_text() == "cat\ndog\n"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["val"] == "images/train"  # no val images: Ultralytics still gets a val set
    lines = (out / "labels" / "train" / "a.txt").read_text().splitlines()
    assert lines[0] == convert.format_yolo_line(convert.YoloBox(0, 0.25, 0.4, 0.3, 0.4))


def test_an_export_with_polygons_writes_segment_rows_in_every_file(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    polygon = {"type": "polygonlabels", "from_name": "outline", "to_name": "image",
               "value": {"points": [[10, 20], [40, 20], [25, 60]], "polygonlabels": ["dog"]}}
    tasks = [task(1, [{"id": 1, "result": [box("cat")]}]), task(2, [{"id": 2, "result": [polygon]}])]
    write_dataset(tasks, tmp_path / "out", ["cat", "dog"], lambda url, tid: tmp_path / "a.png",
                  ExportOptions(val=0.0))
    rows = sorted(p.read_text() for p in (tmp_path / "out" / "labels" / "train").iterdir())
    # Segment training rejects a dataset mixing box and segment rows: the box is written as its corners.
    assert rows == ["0 0.100000 0.200000 0.400000 0.200000 0.400000 0.600000 0.100000 0.600000\n",
                    "1 0.100000 0.200000 0.400000 0.200000 0.250000 0.600000\n"]


def test_split_is_stable_and_near_the_asked_shares() -> None:
    splits = split_names(list(range(2000)), 0.2, 0.1, 5)
    assert splits == split_names(list(range(2000)), 0.2, 0.1, 5)
    assert 0.07 < splits.count("test") / 2000 < 0.13 and 0.17 < splits.count("val") / 2000 < 0.23
    # adding tasks never moves old ones (above the floor)
    assert split_names(list(range(3000)), 0.2, 0.1, 5)[:2000] == splits


@pytest.mark.parametrize("count", [3, 12, 400])
def test_export_val_is_trainings_holdout_and_test_comes_from_its_training_part(count: int) -> None:
    ids = list(range(100, 100 + count))
    examples = [Example(tid, Path(f"{tid}.jpg"), ()) for tid in ids]
    train, holdout = split(examples, 0.2, 5)  # training's rule, TRAIN_HOLDOUT=0.2, TRAIN_MIN_HOLDOUT=5
    names = dict(zip(ids, split_names(ids, 0.2, 0.15, 5)))
    assert {tid for tid, name in names.items() if name == "val"} == {e.task_id for e in holdout}
    assert {tid for tid, name in names.items() if name == "test"} <= {e.task_id for e in train}
    if count == 400:  # test is its own draw, not training's val carve
        _, carved = carve_val(train, 0.15)
        assert {tid for tid, name in names.items() if name == "test"} != {e.task_id for e in carved}
        assert 0.1 < list(names.values()).count("test") / count < 0.2
    assert split_names(ids, 0.0, 0.0, 5) == ["train"] * count  # --val 0: no floor, no val


def test_export_rejects_shares_that_leave_nothing_to_train() -> None:
    with pytest.raises(ValueError, match="leave tasks"):
        ExportOptions(val=0.6, test=0.5)


def test_export_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset([], tmp_path, ["a"], lambda url, tid: Path(url), ExportOptions())
