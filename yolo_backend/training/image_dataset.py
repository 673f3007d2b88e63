"""An image control's dataset: annotated tasks -> upright images and label rows, held out by content.

Label rows come from each region's kind (``kinds``: a box row, an outline's segment row),
by the function ``yolo-ls export-yolo`` uses too; the export's val split is this holdout.
Labels are relative to the image as the browser shows it (EXIF orientation applied), and
the image files are written upright too, so pixels and labels agree whatever the loader
does with EXIF. Upright copies are cached per project in
``MODEL_DIR/projects/<id>/training-images`` by the sha256 of the source bytes: a later
run re-links them instead of decoding again (retention deletes the ones no run uses).
The holdout is split by that same content digest, not by task id (``core.split``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .. import kinds
from ..config import Settings
from ..core.split import file_digest, split
from ..errors import BackendError
from ..formats.controls import ControlSpec
from ..formats.ls_tasks import chosen_annotation
from ..media.fetcher import MediaFetcher, open_image
from .examples import Dataset, Example, carve_val, needed, write_dataset
from .retention import TRAINING_IMAGES, training_images

log = logging.getLogger(__name__)


def build_from_images(root: Path, tasks: list[dict[str, Any]], spec: ControlSpec, settings: Settings,
                      media: MediaFetcher, project: str | None, kind: kinds.Kind) -> Dataset:
    """``build_dataset`` for an image control: fetch upright images, hold out by content, carve val, write."""
    examples, skipped = collect_examples(tasks, spec, settings, media, project, kind)
    rest, holdout = split(examples, settings.train_holdout, settings.train_min_holdout)
    train, val = carve_val(rest)
    labels = kind.train_classes(spec)
    data = write_dataset(root, {"train": train, "val": val}, labels, kind.TRAIN_TASK, kind.dataset_fields(spec))
    return Dataset(data, labels, train, val, holdout, skipped, spec.from_name, kind.TRAIN_TASK)


def too_small(dataset: Dataset, settings: Settings) -> str | None:
    """Why a run cannot start on ``dataset``: TRAIN_MIN_IMAGES in all, and a floor-sized holdout + 2 to train."""
    (need, floors), labeled = needed(settings), dataset.labeled
    return None if labeled >= need else f"need {need - labeled} more labeled images ({labeled} of {need}: {floors})"


def upright_copy(source: Path, cache: Path, max_pixels: int, key: str | None = None) -> Path:
    """``source`` with its EXIF orientation applied, cached by ``key``, the digest of its bytes.

    Content, not path and mtime: the download cache touches a file's mtime on every read,
    and a re-uploaded or re-downloaded image is the same image, so a run never writes a
    second copy of a picture it has already made upright.
    """
    key = key or file_digest(source)
    target = cache / f"{key}.jpg"
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{key}.{os.getpid()}.jpg"
        open_image(source, max_pixels).save(tmp, quality=95)
        os.replace(tmp, target)
    return target


def collect_examples(tasks: list[dict[str, Any]], spec: ControlSpec, settings: Settings,
                     media: MediaFetcher, project: str | None = None, kind: kinds.Kind | None = None
                     ) -> tuple[list[Example], list[str]]:
    """Every task with a usable annotation and a readable image; the reasons for the others."""
    examples, skipped = [], []
    kind = kind or kinds.for_result(spec.kind, spec.task)
    class_ids = {name: index for index, name in enumerate(kind.train_classes(spec))}
    cache = training_images(settings.model_dir_path, project) if project else settings.model_dir_path / TRAINING_IMAGES
    for task in tasks:
        annotation = chosen_annotation(task)
        if annotation is None:
            continue
        try:
            source = media.local_path((task.get("data") or {}).get(spec.data_key), task.get("id"))
            content = file_digest(source)
            image = upright_copy(source, cache, settings.max_image_pixels, content)
        except (BackendError, OSError) as exc:
            skipped.append(f"task {task.get('id')}: {exc}")
            log.warning("training: task %s left out: %s", task.get("id"), exc)
            continue
        lines = kinds.annotation_lines(annotation, class_ids, spec.from_name, spec.to_name, kind.TRAIN_TASK, spec)
        examples.append(Example(task.get("id", len(examples)), image, tuple(lines), content=content))
    return examples, skipped
