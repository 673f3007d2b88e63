"""Annotated tasks -> an Ultralytics dataset on disk, with a deterministic holdout.

Label rows come from each region's kind (``kinds``: a box row, an outline's segment row),
by the function ``yolo-ls export-yolo`` uses too; the export's val split is this holdout.
Labels are relative to the image as the browser shows it (EXIF orientation applied), and
the image files are written upright too, so pixels and labels agree whatever the loader
does with EXIF. Upright copies are cached per project in
``MODEL_DIR/projects/<id>/training-images`` by the sha256 of the source bytes: a later
run re-links them instead of decoding again (retention deletes the ones no run uses).

The holdout is split by that same content digest, not by task id (``split``): the same
picture in two tasks (a re-import) would otherwise train the candidate and then judge it.
``split`` is the one split rule: the holdout here, ``yolo-ls export-yolo``'s val and test,
and the review's folds all rank groups of identical content, so a picture lands on the same
side everywhere. A ``<VideoRectangle>`` control trains on frames of its videos
(``video_dataset``), grouped by the video file's digest, so a video's frames stay together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from .. import kinds
from ..config import Settings
from ..core.filehash import sha256_of
from ..errors import BackendError, LabelConfigError
from ..formats import label_config
from ..media.fetcher import MediaFetcher, open_image
from .collect import chosen_annotation
from .retention import TRAINING_IMAGES, training_images

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One labeled image: the task it came from, an upright image file, YOLO label lines."""

    task_id: int | str
    image: Path
    lines: tuple[str, ...]
    frame: int | None = None  # a video task's frame (1-based); None: an image task
    video: Path | None = None  # the video file a frame was read from: the holdout is scored on its tracks
    content: str = ""  # ``file_digest`` of the source image (a frame: of its video); "": the task id stands for it

    @property
    def group(self) -> Any:
        """What a split keeps on one side: identical content (in any task), else the task (hand-made examples)."""
        return self.content or self.task_id

    @property
    def stem(self) -> str:
        """Its file name in a dataset: ``task-<id>``, ``task-<id>-frame-<n>`` for a video frame."""
        return f"task-{self.task_id}" + ("" if self.frame is None else f"-frame-{self.frame:06d}")


@dataclass
class Dataset:
    """What a run trains on (``train``, with ``val`` for Ultralytics' best epoch) and what judges it (``holdout``).

    The holdout never reaches Ultralytics in any form: not as training data, not as its
    validation split, so the model cannot have been tuned on the images that score it.
    """

    data_yaml: Path
    labels: list[str]
    train: list[Example]
    val: list[Example]
    holdout: list[Example]
    skipped: list[str] = field(default_factory=list)  # why some tasks were left out
    control: str = ""  # from_name of the control the labels come from
    task: str = "detect"  # the Ultralytics task it trains (``classify``: ``data_yaml`` is the folder)
    media: str = "image"  # "video": examples are frames, several per task


def training_control(config_xml: str) -> label_config.ControlSpec:
    """The control whose labels become the classes: the first of a registered kind (an Image's, or a Video's).

    A control no checkpoint can learn (``kinds.refusal``: ``<Choices choice="multiple">``, whose images
    would sit in two class folders at once) is passed over; LabelConfigError with the reason when none is left.
    """
    specs = label_config.parse(config_xml)
    usable = [spec for spec in specs if kinds.refusal(spec) is None]
    if not usable:
        raise LabelConfigError("; ".join(str(kinds.refusal(spec)) for spec in specs))
    return usable[0]


def passed_over(config_xml: str) -> dict[str, str]:
    """Controls ``training_control`` passes over, each with the reason (recorded in a run's metrics)."""
    return {spec.from_name: reason for spec in label_config.parse(config_xml) if (reason := kinds.refusal(spec))}


def file_digest(source: Path) -> str:
    """The sha256 of a file's bytes (32 hex digits): the upright cache's key and what the split ranks."""
    return sha256_of(source)[:32]


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


def collect_examples(tasks: list[dict[str, Any]], spec: label_config.ControlSpec, settings: Settings,
                     media: MediaFetcher, project: str | None = None, kind: kinds.Kind | None = None
                     ) -> tuple[list[Example], list[str]]:
    """Every task with a usable annotation and a readable image; the reasons for the others."""
    examples, skipped = [], []
    kind = kind or kinds.for_result(spec.kind, spec.task)
    class_ids = {name: index for index, name in enumerate(kinds.train_classes(kind, spec))}
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


def rank(key: Any, salt: str) -> float:
    """A group's stable place in [0, 1) for one split (``salt``); it never changes as the project grows."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def in_holdout(key: Any, fraction: float) -> bool:
    """Stable per group: a picture stays on its side of the split as the project grows."""
    return rank(key, "holdout") < fraction


Item = TypeVar("Item")


def groups(items: Sequence[Item], salt: str, key: Callable[[Item], Any] = attrgetter("group")) -> list[list[Item]]:
    """``items`` gathered by ``key`` (an ``Example``'s content digest), the groups ordered by rank for ``salt``.

    The one rule of what stays together: ``split`` (holdout, val, export) and the review's
    folds all take whole groups, so identical pictures never sit on two sides.
    """
    gathered: dict[Any, list[Item]] = {}
    for item in items:
        gathered.setdefault(key(item), []).append(item)
    return [gathered[k] for k in sorted(gathered, key=lambda k: (rank(k, salt), str(k)))]


def split(items: Sequence[Item], fraction: float, floor: int = 1, salt: str = "holdout", keep: int = 0,
          key: Callable[[Item], Any] = attrgetter("group")) -> tuple[list[Item], list[Item]]:
    """(rest, held): every group ranked below ``fraction``, then the next-ranked groups until ``held`` has
    ``floor`` items, leaving at least ``keep`` groups in the rest.

    Both rules pick the lowest ranks, so a picture that trained a model never moves into a
    later holdout (which would flatter that model), however the project grows. ``items`` are
    examples here (grouped by content; a video's frames by the video's), exported tasks in
    ``yolo_export`` (``key`` reads the digest of one).
    """
    ordered = groups(items, salt, key)
    held = count = 0
    for group in ordered[:max(len(ordered) - keep, 0)]:
        if rank(key(group[0]), salt) >= fraction and count >= floor:
            break
        held, count = held + 1, count + len(group)
    return [i for g in ordered[held:] for i in g], [i for g in ordered[:held] for i in g]


def carve_val(train: list[Example], fraction: float = 0.15) -> tuple[list[Example], list[Example]]:
    """(train, val) from the training part: Ultralytics picks its best epoch and stops early on ``val``."""
    size = min(max(1, round(fraction * len(train))), len(train) - 1)
    fit, val = split(train, 0.0, size, salt="val", keep=1)
    return (fit, val) if val else (train, list(train))  # too small to carve: Ultralytics still needs a val split


def write_dataset(root: Path, parts: dict[str, list[Example]], labels: list[str], task: str = "detect",
                  fields: dict[str, Any] | None = None) -> Path:
    """images/<part>, labels/<part> for each part, and data.yaml naming ``train`` and ``val`` only.

    A ``classify`` dataset is Ultralytics' class folders instead, ``<part>/<label>/`` (an
    image with several choices sits in each of their folders); its folder is the data.
    """
    if task == "classify":
        return _write_class_folders(root, parts, labels)
    for name, part in parts.items():
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
        (root / "labels" / name).mkdir(parents=True, exist_ok=True)
        for example in part:
            _link(example.image, root / "images" / name / f"{example.stem}.jpg")
            (root / "labels" / name / f"{example.stem}.txt").write_text("".join(f"{line}\n" for line in example.lines))
    names = "".join(f"  {index}: {_yaml_string(label)}\n" for index, label in enumerate(labels))
    extra = "".join(f"{key}: {json.dumps(value)}\n" for key, value in (fields or {}).items())  # JSON is YAML
    data_yaml = root / "data.yaml"
    data_yaml.write_text(f"path: {_yaml_string(str(root.resolve()))}\ntrain: images/train\nval: images/val\n"
                         f"{extra}names:\n{names}")
    return data_yaml


def _write_class_folders(root: Path, parts: dict[str, list[Example]], labels: list[str]) -> Path:
    for name, part in parts.items():
        for label in labels:  # every class folder, empty or not: Ultralytics counts classes by folders
            (root / name / class_folder_name(label)).mkdir(parents=True, exist_ok=True)
        for example in part:
            for line in dict.fromkeys(example.lines):
                _link(example.image, root / name / class_folder_name(labels[int(line.split()[0])]) /
                      f"{example.stem}.jpg")
    return root


def class_folder_name(label: str) -> str:
    """A label as a folder name: path separators and leading dots cannot name a folder."""
    return label.replace("/", "\u2215").replace("\\", "\u2216").lstrip(".") or "_"


def _link(source: Path, link: Path) -> None:
    try:
        os.link(source, link)
    except OSError:  # another file system: copy
        link.write_bytes(source.read_bytes())


def _yaml_string(text: str) -> str:
    """A YAML double-quoted scalar (labels may hold ':' or '#')."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_dataset(root: Path, tasks: list[dict[str, Any]], config_xml: str, settings: Settings,
                  media: MediaFetcher | None = None, project: str | None = None,
                  kind: kinds.Kind | None = None) -> Dataset:
    """The whole step: choose annotations, fetch upright images, hold out, carve val, write.

    ``kind`` (default: the control's own) decides the rows, the classes and the layout.
    """
    spec = training_control(config_xml)
    kind = kind or kinds.for_result(spec.kind, spec.task)
    media = media or MediaFetcher.from_settings(settings)
    if spec.media == "video":
        from .video_dataset import build_from_video

        return build_from_video(root, tasks, spec, settings, media, kind)
    examples, skipped = collect_examples(tasks, spec, settings, media, project, kind)
    rest, holdout = split(examples, settings.train_holdout, settings.train_min_holdout)
    train, val = carve_val(rest)
    labels = kinds.train_classes(kind, spec)
    data = write_dataset(root, {"train": train, "val": val}, labels, kind.TRAIN_TASK, kinds.dataset_fields(kind, spec))
    return Dataset(data, labels, train, val, holdout, skipped, spec.from_name, kind.TRAIN_TASK)
