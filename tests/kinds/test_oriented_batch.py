"""``yolo-ls import-yolo --obb`` and ``export-yolo --obb``: OBB label folders <-> rotated rectangles, EXIF-correct."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.rotated_shapes import RotatedSample, obb_row, write
from yolo_backend.cli import main
from yolo_backend.formats.yolo_folder import write_data_yaml
from yolo_backend.kinds import oriented_boxes

ORIENTATIONS = (1, 3, 6, 8)
NAMES = ["red", "blue"]
TOL = 1e-4  # of the image side


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[RotatedSample]]:
    """An Ultralytics-layout OBB dataset: images/train + labels/train + data.yaml, one image per orientation."""
    root = tmp_path_factory.mktemp("obb-ds")
    samples = [write(root / "images" / "train", seed, orientation) for seed, orientation in enumerate(ORIENTATIONS)]
    (root / "labels" / "train").mkdir(parents=True)
    for sample in samples:
        rows = [obb_row(cls, box, sample.width, sample.height) for cls, box in sample.objects]
        (root / "labels" / "train" / f"{sample.path.stem}.txt").write_text("\n".join(rows) + "\n")
    write_data_yaml(root, NAMES, splits=("train",))
    return root, samples


@pytest.fixture(scope="module")
def imported(folder: tuple[Path, list[RotatedSample]], tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    root, _ = folder
    out = tmp_path_factory.mktemp("tasks") / "tasks.json"
    assert main(["import-yolo", str(root), "--obb", "--as", "annotations", "--document-root", str(root),
                 "-o", str(out), "--no-progress"]) == 0
    tasks = json.loads(out.read_text())
    for index, task in enumerate(tasks):
        task["id"] = index + 1
    return tasks


def far(a, b, size) -> float:  # type: ignore[no-untyped-def]
    """Largest distance, in image sides, from a corner of one set to the nearest of the other, both ways."""
    def one(p, q) -> float:  # type: ignore[no-untyped-def]
        return max(min(max(abs(x - u) / size[0], abs(y - v) / size[1]) for u, v in q) for x, y in p)
    return max(one(a, b), one(b, a))


def test_import_gives_rotated_rectangles_on_the_displayed_image(folder, imported) -> None:
    _, samples = folder
    assert len(imported) == len(samples)
    for task, sample in zip(imported, samples):
        assert task["data"]["image"].endswith(sample.path.name)
        regions = task["annotations"][0]["result"]
        assert len(regions) == len(sample.objects) > 0
        for region, (cls, box) in zip(regions, sample.objects):
            size = (region["original_width"], region["original_height"])
            assert size == (sample.width, sample.height)  # displayed, EXIF applied: 6 and 8 swap the stored sides
            value = region["value"]
            assert region["type"] == "rectanglelabels" and value["rectanglelabels"] == [NAMES[cls]]
            assert 0 <= value["rotation"] < 90
            assert far(oriented_boxes.value_corners(value, *size), box, size) < TOL


def test_export_writes_obb_rows_ultralytics_reads(folder, imported, tmp_path: Path) -> None:
    root, samples = folder
    source = tmp_path / "export.json"
    source.write_text(json.dumps(imported))
    out = tmp_path / "ds"
    assert main(["export-yolo", "--from-file", str(source), "-o", str(out), "--obb", "--classes", ",".join(NAMES),
                 "--document-root", str(root), "--val", "0", "--no-progress"]) == 0
    truth = {sample.path.name: sample for sample in samples}
    for label in sorted((out / "labels" / "train").glob("*.txt")):
        sample = truth[f"{label.stem}.jpg"]
        rows = [line.split() for line in label.read_text().splitlines()]
        assert len(rows) == len(sample.objects) and all(len(row) == 9 for row in rows)
        for row, (cls, box) in zip(rows, sample.objects):
            numbers = [float(n) for n in row[1:]]
            written = [(x * sample.width, y * sample.height) for x, y in zip(numbers[0::2], numbers[1::2])]
            assert int(row[0]) == cls and far(written, box, (sample.width, sample.height)) < TOL
    # Ultralytics' own obb dataset builder accepts it, and sees the same rectangles
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(out / "data.yaml"))
    dataset = YOLODataset(img_path=data["train"], data=data, task="obb", imgsz=320, augment=False)
    assert len(dataset.labels) == len(samples)
    for label in dataset.labels:
        sample = truth[Path(label["im_file"]).name]
        segments = np.array(label["segments"])  # corners, relative, as obb training reads them
        assert segments.shape == (len(sample.objects), 4, 2)
        for read, (_, box) in zip(segments, sample.objects):  # the same corners, maybe from another one
            assert far([(x * sample.width, y * sample.height) for x, y in read], box,
                       (sample.width, sample.height)) < TOL
