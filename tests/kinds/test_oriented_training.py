"""Oriented boxes retrained from submitted rotated rectangles: obb rows, scored by rotated IoU, promoted.

The whole loop as in production, minus the Label Studio API call: annotated tasks in Label
Studio's format (rotated ``rectanglelabels``), the trainer's child process, the promotion
gate, then ``/predict`` serving the new version's rotated rectangles.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tests.support import rotated_shapes
from yolo_backend.config import Settings
from yolo_backend.formats import convert, overlap
from yolo_backend.kinds import oriented_boxes
from yolo_backend.training import scoring

PROJECT = "21"
CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image" model_obb="true"><Label value="red"/><Label value="blue"/>
</RectangleLabels></View>"""


def rotated_task(doc_root: Path, seed: int, task_id: int, orientation: int = 1) -> dict[str, Any]:
    """One task as Label Studio stores it: rotated rectangles in percent of the displayed image."""
    sample = rotated_shapes.write(doc_root / "rot", seed, orientation)
    results = []
    for index, (cls, corners) in enumerate(sample.objects):
        value = oriented_boxes.value_from_corners(corners, sample.width, sample.height)
        results.append(convert.region(value, ("red", "blue")[cls], result_type="rectanglelabels",
                                      from_name="label", to_name="image", size=(sample.width, sample.height),
                                      region_id=f"t{task_id}-{index}"))
    return {"id": task_id, "data": {"image": f"/data/local-files/?d=rot/{sample.path.name}"},
            "annotations": [{"id": 10 * task_id, "result": results, "was_cancelled": False, "ground_truth": False,
                             "created_at": "2025-01-01T00:00:00Z"}],
            "_truth": sample.objects}


def test_rotated_iou_is_the_rectangles_not_their_bounds() -> None:
    """Two thin rectangles crossing at 90 degrees share their bounding box but barely overlap."""
    a = rotated_shapes.corners(100, 100, 120, 20, 45)
    b = rotated_shapes.corners(100, 100, 120, 20, -45)
    bounds = [(min(x for x, _ in c), min(y for _, y in c), max(x for x, _ in c), max(y for _, y in c)) for c in (a, b)]
    ious = oriented_boxes.KIND.overlap([(bounds[0], a)], [(bounds[1], b)])
    assert overlap.box_iou(np.array(bounds[:1]), np.array(bounds[1:]))[0, 0] > 0.99
    expected = 20 * 20 / (2 * 120 * 20 - 20 * 20)  # the crossing square over the union
    assert math.isclose(ious[0, 0], expected, abs_tol=0.01), ious
    same = oriented_boxes.KIND.overlap([(bounds[0], a)], [(bounds[0], tuple(reversed(a)))])
    assert same[0, 0] > 0.98  # corner order does not matter


def test_an_obb_annotation_trains_as_an_obb_row_and_scores_by_its_corners(tmp_path: Path) -> None:
    from yolo_backend.training.dataset import build_dataset

    tasks = [rotated_task(tmp_path, seed, seed + 1, orientation) for seed, orientation in enumerate((1, 3, 6, 8))]
    settings = Settings.from_env({}, model_dir=str(tmp_path / "state"), local_files_document_root=str(tmp_path),
                                 train_holdout=0.5, train_min_holdout=1)
    dataset = build_dataset(tmp_path / "ds", tasks, CONFIG, settings, kind=oriented_boxes.KIND)
    assert dataset.task == "obb" and dataset.labels == ["red", "blue"]
    by_id = {task["id"]: task for task in tasks}
    for example in (*dataset.train, *dataset.val, *dataset.holdout):
        truth = by_id[example.task_id]["_truth"]
        assert len(example.lines) == len(truth) and all(len(line.split()) == 9 for line in example.lines)
        for line, (cls, corners) in zip(example.lines, truth):
            label, box, shape = oriented_boxes.KIND.truth(line, 320, 256)  # rotated_shapes' displayed size
            assert label == cls
            ious = oriented_boxes.KIND.overlap([(box, shape)], [(box, corners)])
            assert ious[0, 0] > 0.97, (line, corners)  # the displayed rectangle, whatever the file's EXIF tag


def test_scoring_an_oriented_holdout_counts_a_rotated_hit_and_a_bounding_box_miss() -> None:
    truth_corners = rotated_shapes.corners(100, 100, 120, 20, 45)
    crossing = rotated_shapes.corners(100, 100, 120, 20, -45)
    bounds = (100 - 49.5, 100 - 49.5, 100 + 49.5, 100 + 49.5)
    truth = [scoring.Truth(0, bounds, truth_corners)]
    found = [scoring.Found(0, 0.9, bounds, crossing), scoring.Found(0, 0.8, bounds, truth_corners)]
    ious = oriented_boxes.KIND.overlap([(f.box, f.shape) for f in found], [(t.box, t.shape) for t in truth])
    image = scoring.Image(tuple(found), tuple(truth), ious)
    assert scoring.match(image) == [False, True]  # the crossing one has the same bounds, not the same rectangle


# Retraining, promoting and serving rotated rectangles runs end to end through a real Label Studio in
# tests/e2e/test_kind_oriented.py (the same run without it was CI time paid twice).
