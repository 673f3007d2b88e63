"""A Label Studio project made of generated shapes: images under a local-files root, task dicts, truths.

Tasks look exactly like Label Studio's API returns them (``data.image`` a
``/data/local-files/?d=...`` URL, annotations with ``rectanglelabels`` results in
percent), so the training pipeline can be fed without a network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.synthetic import Shape, draw_sample

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="square"/><Label value="circle"/>
  </RectangleLabels>
</View>"""
# The same shapes under the project's own names, served by the shapes model through predicted_values.
MAPPED_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="box" predicted_values="square"/><Label value="disc" predicted_values="circle"/>
  </RectangleLabels>
</View>"""


def region(shape: Shape, width: int, height: int, label: str | None = None) -> dict[str, Any]:
    """One rectangle result as Label Studio stores it (percent of the displayed image)."""
    x1, y1, x2, y2 = shape.box
    return {"id": f"r{x1}-{y1}", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
            "original_width": width, "original_height": height, "image_rotation": 0,
            "value": {"x": x1 / width * 100, "y": y1 / height * 100, "width": (x2 - x1) / width * 100,
                      "height": (y2 - y1) / height * 100, "rotation": 0,
                      "rectanglelabels": [label or shape.label]}}


def write_project(doc_root: Path, count: int, seed: int = 5000, first_id: int = 1, folder: str = "shapes",
                  size: tuple[int, int] | None = (256, 256), max_shapes: int = 4) -> list[dict[str, Any]]:
    """``count`` annotated tasks whose images live in ``doc_root/folder``; truths kept in ``task['_truth']``."""
    (doc_root / folder).mkdir(parents=True, exist_ok=True)
    tasks = []
    for i in range(count):
        img, shapes = draw_sample(seed + i, size=size, max_shapes=max_shapes, min_side=32, max_side=96)
        name = f"{folder}/img-{seed + i}.jpg"
        img.save(doc_root / name, quality=92)
        task_id = first_id + i
        results = [region(s, *img.size) for s in shapes]
        tasks.append({"id": task_id, "data": {"image": f"/data/local-files/?d={name}"},
                      "annotations": [{"id": 10 * task_id, "result": results, "was_cancelled": False,
                                       "ground_truth": False, "created_at": "2025-01-01T00:00:00Z"}],
                      "_truth": [(s.class_id, s.box) for s in shapes]})
    return tasks


def export_file(path: Path, tasks: list[dict[str, Any]], label_config: str = LABEL_CONFIG) -> str:
    """Write the project as a JSON export; returns the training source spec ``file:<path>``."""
    path.write_text(json.dumps({"label_config": label_config, "tasks": tasks}))
    return f"file:{path}"
