"""YOLO folder -> Label Studio task JSON, with regions as predictions or annotations.

Each label line becomes a region of the kind asked for (``kinds``: a box, or an outline,
whose segment lines keep their points). Coordinates are percent of the image as displayed
(EXIF orientation applied), rounded by ``convert`` to the same precision everywhere. A bad
image or label file is reported with its path and skipped; the run goes on.

Reading tasks back, which annotation of a task counts (``chosen_annotation``) is one rule
for training, the export and the review alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from .. import kinds
from ..progress import bar
from . import convert
from .yolo_folder import Sample, displayed_size, read_labels

MISSING_CHOICES = ("empty", "skip", "whole")


@dataclass(frozen=True)
class TaskFormat:
    """How tasks are written; the names must match the project's label config."""

    from_name: str = "label"
    to_name: str = "image"
    data_key: str = "image"
    kind: str = "rectanglelabels"  # the result type of a registered kind (kinds.RESULT_TYPES)
    as_annotations: bool = False  # predictions (pre-annotations) unless asked otherwise
    model_version: str = "yolo-import"
    missing: str = "empty"  # image without label file: empty task, skip it, or one whole-image box
    whole_class: int = 0  # class of the whole-image box
    task: str | None = None  # "obb": rows are oriented boxes, rectangles keep their rotation (kinds.oriented_boxes)
    keypoint_names: tuple[str, ...] = ()  # pose rows: the label of each keypoint index (kinds.keypoints)


@dataclass
class Conversion:
    """What a run produced: tasks, images left out (path, reason) and the box count."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    boxes: int = 0

    def summary(self) -> str:
        return (f"{len(self.tasks)} tasks, {self.boxes} boxes; {len(self.skipped)} images skipped, "
                f"{len(self.failed)} failed")


def local_files_url(image: Path, document_root: Path) -> str:
    """Label Studio's local-files URL: ``/data/local-files/?d=<path under the document root>``."""
    try:
        relative = image.resolve().relative_to(Path(document_root).resolve())
    except ValueError:
        raise ValueError(f"{image} is not under the document root {document_root}: put the images under "
                         "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, or give --url-prefix") from None
    return "/data/local-files/?d=" + quote(relative.as_posix(), safe="/")


def prefixed_url(image: Path, root: Path, prefix: str) -> str:
    """``prefix`` + the image path under the dataset root (for http(s), s3://, gs://...)."""
    relative = image.resolve().relative_to(Path(root).resolve()).as_posix()
    return prefix.rstrip("/") + "/" + quote(relative, safe="/")


def build_task(url: str, boxes: list[tuple[convert.YoloBox, float | None]], names: dict[int, str],
               fmt: TaskFormat, size: tuple[int, int]) -> dict[str, Any]:
    """A task for one image; a class without a name raises ValueError saying how to fix it."""
    regions = []
    for index, (box, score) in enumerate(boxes):
        if box.class_id not in names:
            raise ValueError(f"class {box.class_id} has no name (known: 0..{max(names)}): fix the label "
                             "or add the name to data.yaml / classes.txt / --classes")
        regions.append(kinds.label_to_region(box, names[box.class_id], fmt.kind, from_name=fmt.from_name,
                                             to_name=fmt.to_name, size=size,
                                             region_id=convert.region_id(url, index), score=score,
                                             task=fmt.task))
    return _wrap(url, regions, fmt)


def _wrap(url: str, regions: list[dict[str, Any]], fmt: TaskFormat) -> dict[str, Any]:
    """A task holding ``regions`` as its annotation or its prediction (scored by their mean)."""
    task: dict[str, Any] = {"data": {fmt.data_key: url}}
    if fmt.as_annotations:
        task["annotations"] = [{"result": regions}]
    else:
        prediction = {"model_version": fmt.model_version, "result": regions}
        scores = [r["score"] for r in regions if "score" in r]
        if scores:
            prediction["score"] = round(sum(scores) / len(scores), convert.SCORE_DECIMALS)
        task["predictions"] = [prediction]
    return task


def convert_samples(samples: list[Sample], names: dict[int, str], fmt: TaskFormat,
                    url_for: Callable[[Path], str], progress: bool | None = None) -> Conversion:
    """Every sample to a task; problems are collected with their path, never raised."""
    done = Conversion()
    kind = kinds.for_result(fmt.kind, fmt.task)
    whole_rows = isinstance(kind, kinds.WholeImageKind)  # the kind reads an image's rows at once
    for sample in bar(samples, "images", "img", show=progress):
        blame = sample.label or sample.image  # the file to fix when something is wrong
        try:
            boxes = None if whole_rows else _boxes_of(sample, fmt)
            found = (sample.label or getattr(sample, "rows", None) or None) if whole_rows else boxes  # rows: a class
            if found is None and (fmt.missing == "skip" or not whole_rows):
                done.skipped.append((sample.image, "no label file"))
                continue
            blame = sample.image
            url, size = url_for(sample.image), displayed_size(sample.image)
            blame = sample.label or sample.image
            if isinstance(kind, kinds.WholeImageKind):
                task = _whole_image_task(kind, url, sample, names, fmt, size)
                count = len(next(iter(task.get("annotations") or task["predictions"]))["result"])
            else:
                task, count = build_task(url, boxes or [], names, fmt, size), len(boxes or [])
        except (ValueError, OSError) as exc:
            done.failed.append((blame, str(exc)))
            continue
        done.tasks.append(task)
        done.boxes += count
    return done


def _whole_image_task(kind: kinds.WholeImageKind, url: str, sample: Sample, names: dict[int, str], fmt: TaskFormat,
                      size: tuple[int, int]) -> dict[str, Any]:
    """A task whose regions ``kind`` builds from all the image's rows (keypoints, class folders)."""
    rows = [line for line in sample.label.read_text().splitlines() if line.strip()] if sample.label \
        else list(getattr(sample, "rows", ()))  # a class-folder image (yolo_folder.ClassSample): its class
    place = convert.Place(fmt.from_name, fmt.to_name, size, url, fmt.keypoint_names)
    regions = kind.import_regions(rows, names, place)
    return _wrap(url, regions, fmt)


def _boxes_of(sample: Sample, fmt: TaskFormat) -> list[tuple[convert.YoloBox, float | None]] | None:
    if sample.label is not None:
        return read_labels(sample.label)
    if fmt.missing == "skip":
        return None
    if fmt.missing == "whole":
        return [(convert.YoloBox(fmt.whole_class, 0.5, 0.5, 1.0, 1.0), None)]
    return []


def chosen_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The annotation that counts: skipped/cancelled ones are out; ground truth wins, then the newest."""
    usable = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not usable:
        return None

    def rank(a: dict[str, Any]) -> tuple[bool, str, int]:
        stamp = str(a.get("updated_at") or a.get("created_at") or "")  # ISO 8601 sorts as text
        return bool(a.get("ground_truth")), stamp, int(a.get("id") or 0)

    return max(usable, key=rank)
