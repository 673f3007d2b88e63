"""Annotated tasks -> an Ultralytics dataset on disk, with a deterministic holdout.

Boxes are written relative to the image as the browser shows it (EXIF orientation
applied), and the image files are written upright too, so pixels and boxes agree
whatever the loader does with EXIF. Upright copies are cached in
``MODEL_DIR/training-images`` by source file identity: a later run re-links them
instead of fetching and decoding again.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import convert, label_config
from ..config import Settings
from ..errors import BackendError
from ..media import MediaFetcher, open_image
from .collect import chosen_annotation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One labeled image: the task it came from, an upright image file, YOLO label lines."""

    task_id: int | str
    image: Path
    lines: tuple[str, ...]


@dataclass
class Dataset:
    data_yaml: Path
    labels: list[str]
    train: list[Example]
    holdout: list[Example]
    skipped: list[str] = field(default_factory=list)  # why some tasks were left out



def training_control(config_xml: str) -> label_config.ControlSpec:
    """The control whose labels become the classes: the first RectangleLabels/PolygonLabels on an Image."""
    return label_config.parse(config_xml)[0]


def task_lines(annotation: dict[str, Any], spec: label_config.ControlSpec) -> tuple[str, ...]:
    """YOLO lines for the regions of ``spec``'s control; other controls and unknown labels are ignored."""
    class_ids = {name: index for index, name in enumerate(spec.labels)}
    lines = []
    for region in annotation.get("result") or []:
        if region.get("from_name") != spec.from_name or region.get("to_name") != spec.to_name:
            continue
        box = convert.region_to_yolo(region, class_ids)
        if box is not None:
            lines.append(convert.format_yolo_line(box))
    return tuple(lines)


def upright_copy(source: Path, cache: Path, max_pixels: int) -> Path:
    """``source`` with its EXIF orientation applied, cached by the source file's identity."""
    st = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{st.st_mtime_ns}:{st.st_size}".encode()).hexdigest()[:32]
    target = cache / f"{key}.jpg"
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{key}.{os.getpid()}.jpg"
        open_image(source, max_pixels).save(tmp, quality=95)
        os.replace(tmp, target)
    return target


def collect_examples(tasks: list[dict[str, Any]], spec: label_config.ControlSpec, settings: Settings,
                     media: MediaFetcher) -> tuple[list[Example], list[str]]:
    """Every task with a usable annotation and a readable image; the reasons for the others."""
    examples, skipped = [], []
    cache = settings.model_dir_path / "training-images"
    for task in tasks:
        annotation = chosen_annotation(task)
        if annotation is None:
            continue
        try:
            source = media.local_path((task.get("data") or {}).get(spec.data_key), task.get("id"))
            image = upright_copy(source, cache, settings.max_image_pixels)
        except (BackendError, OSError) as exc:
            skipped.append(f"task {task.get('id')}: {exc}")
            log.warning("training: task %s left out: %s", task.get("id"), exc)
            continue
        examples.append(Example(task.get("id", len(examples)), image, task_lines(annotation, spec)))
    return examples, skipped


def in_holdout(task_id: int | str, fraction: float) -> bool:
    """Stable per task: a task stays on its side of the split as the project grows."""
    digest = hashlib.sha256(f"holdout:{task_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def split(examples: list[Example], fraction: float) -> tuple[list[Example], list[Example]]:
    """(train, holdout); both non-empty when there are two examples or more."""
    holdout = [e for e in examples if in_holdout(e.task_id, fraction)]
    train = [e for e in examples if not in_holdout(e.task_id, fraction)]
    if not holdout and len(train) > 1:  # tiny project, unlucky hashes: hold out the first by hash order
        first = min(train, key=lambda e: hashlib.sha256(f"holdout:{e.task_id}".encode()).digest())
        train.remove(first)
        holdout = [first]
    if not train and len(holdout) > 1:
        train = [holdout.pop()]
    return train, holdout


def write_dataset(root: Path, train: list[Example], holdout: list[Example], labels: list[str]) -> Path:
    """images/{train,holdout}, labels/{train,holdout}, data.yaml (``val`` is the holdout)."""
    for name, part in (("train", train), ("holdout", holdout)):
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
        (root / "labels" / name).mkdir(parents=True, exist_ok=True)
        for example in part:
            stem = f"task-{example.task_id}"
            link = root / "images" / name / f"{stem}.jpg"
            try:
                os.link(example.image, link)
            except OSError:  # another file system: copy
                link.write_bytes(example.image.read_bytes())
            (root / "labels" / name / f"{stem}.txt").write_text("".join(f"{line}\n" for line in example.lines))
    names = "".join(f"  {index}: {_yaml_string(label)}\n" for index, label in enumerate(labels))
    data_yaml = root / "data.yaml"
    data_yaml.write_text(f"path: {_yaml_string(str(root.resolve()))}\ntrain: images/train\nval: images/holdout\n"
                         f"names:\n{names}")
    return data_yaml


def _yaml_string(text: str) -> str:
    """A YAML double-quoted scalar (labels may hold ':' or '#')."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_dataset(root: Path, tasks: list[dict[str, Any]], config_xml: str, settings: Settings,
                  media: MediaFetcher | None = None) -> Dataset:
    """The whole step: choose annotations, fetch upright images, split, write."""
    spec = training_control(config_xml)
    examples, skipped = collect_examples(tasks, spec, settings, media or MediaFetcher.from_settings(settings))
    train, holdout = split(examples, settings.train_holdout)
    labels = list(spec.labels)
    return Dataset(write_dataset(root, train, holdout, labels), labels, train, holdout, skipped)
