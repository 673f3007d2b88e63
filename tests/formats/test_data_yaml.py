"""One ``data.yaml`` writer (``formats.yolo_folder.write_data_yaml``) for every dataset the package makes.

Training wrote its file by hand and ``yolo-ls export-yolo`` with ``yaml.safe_dump``; both now
call the one writer. What Ultralytics reads from it must be what each wrote before: the
names (whatever a label holds), the parts, a pose set's keys.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from PIL import Image

from yolo_backend.formats import yolo_export
from yolo_backend.formats.yolo_folder import write_data_yaml
from yolo_backend.training.examples import Example, write_dataset

AWKWARD = ["car: red", "#2 truck", 'say "hi"', "back\\slash", "ünïcode", "- dash", "yes", "007"]


def examples(tmp_path: Path, count: int, classes: int) -> list[Example]:
    out = []
    for index in range(count):
        image = tmp_path / f"src-{index}.jpg"
        Image.new("RGB", (32, 32), (index * 20 % 255, 90, 160)).save(image)
        out.append(Example(index, image, (f"{index % classes} 0.5 0.5 0.25 0.25",)))
    return out


def test_a_training_dataset_reads_back_in_ultralytics_with_every_label_as_written(tmp_path: Path) -> None:
    from ultralytics.data.utils import check_det_dataset

    parts = examples(tmp_path, 6, len(AWKWARD))
    data = write_dataset(tmp_path / "ds", {"train": parts[:4], "val": parts[4:]}, AWKWARD)
    checked = check_det_dataset(str(data))
    assert checked["names"] == dict(enumerate(AWKWARD)) and checked["nc"] == len(AWKWARD)
    assert Path(checked["train"]) == (tmp_path / "ds" / "images" / "train").resolve()
    assert Path(checked["val"]) == (tmp_path / "ds" / "images" / "val").resolve()
    assert sorted(p.name for p in Path(checked["val"]).iterdir()) == ["task-4.jpg", "task-5.jpg"]


def test_a_pose_dataset_keeps_its_keys_as_ultralytics_reads_them(tmp_path: Path) -> None:
    from ultralytics.data.utils import check_det_dataset

    parts = examples(tmp_path, 3, 1)
    fields = {"kpt_shape": [3, 3], "flip_idx": [0, 2, 1]}
    data = write_dataset(tmp_path / "ds", {"train": parts[:2], "val": parts[2:]}, ["hand"], "pose", fields)
    checked = check_det_dataset(str(data))
    assert checked["kpt_shape"] == [3, 3] and checked["flip_idx"] == [0, 2, 1] and checked["names"] == {0: "hand"}
    keys = list(yaml.safe_load(data.read_text()))
    assert keys == ["path", "train", "val", "kpt_shape", "flip_idx", "names"]  # the order training wrote


def test_training_and_the_export_write_one_file(tmp_path: Path) -> None:
    """The same names and parts give the same data.yaml, whoever writes the dataset."""
    trained = write_dataset(tmp_path / "a", {"train": [], "val": []}, AWKWARD)
    exported = tmp_path / "b"
    yolo_export._finish(exported, AWKWARD, yolo_export.Export(Counter(train=3, val=1)))
    a, b = yaml.safe_load(trained.read_text()), yaml.safe_load((exported / "data.yaml").read_text())
    assert a.pop("path") == str((tmp_path / "a").resolve()) and b.pop("path") == str(exported.resolve())
    assert a == b == {"train": "images/train", "val": "images/val", "names": dict(enumerate(AWKWARD))}
    assert (exported / "classes.txt").read_text().splitlines() == AWKWARD  # the export's own extra file


@pytest.mark.parametrize(("splits", "val", "test"), [
    (("train", "val"), "images/val", None),
    (("train",), "images/train", None),  # no val images: Ultralytics still gets a val split
    (("train", "val", "test"), "images/val", "images/test"),
])
def test_val_falls_back_to_train_and_test_only_when_written(tmp_path: Path, splits: tuple, val: str,
                                                            test: str | None) -> None:
    data = yaml.safe_load(write_data_yaml(tmp_path, ["a"], splits).read_text())
    assert data["train"] == "images/train" and data["val"] == val and data.get("test") == test


def test_class_folders_record_names_only(tmp_path: Path) -> None:
    data = yaml.safe_load(write_data_yaml(tmp_path, ["a", "b"], ("train",), folders=True).read_text())
    assert data == {"path": str(tmp_path.resolve()), "train": "train", "val": "train", "names": {0: "a", 1: "b"}}
