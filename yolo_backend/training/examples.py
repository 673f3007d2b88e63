"""What every dataset is made of, images or video frames alike: examples, the parts of a run, their files.

``Example`` is one labeled image, ``Dataset`` the parts a run trains on (``train``, ``val``) and
is judged on (``holdout``), ``write_dataset`` their files in Ultralytics' layout. The builders
(``image_dataset``, ``video_dataset``) and the review's folds all import this leaf; the
dispatcher that picks a builder is ``dataset.build_dataset``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..core.split import split
from ..formats.yolo_folder import class_folder_name, write_class_sample, write_data_yaml, write_sample


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

    @property
    def labeled(self) -> int:
        """What the size rules count: train, val and holdout examples."""
        return len(self.train) + len(self.val) + len(self.holdout)


def needed(settings: Settings) -> tuple[int, str]:
    """Examples a run needs (TRAIN_MIN_IMAGES in all, a floor-sized holdout + 2 to train); the settings that say so."""
    return (max(settings.train_min_images, settings.train_min_holdout + 2),
            f"TRAIN_MIN_IMAGES={settings.train_min_images}, TRAIN_MIN_HOLDOUT={settings.train_min_holdout} "
            f"held out + 2 to train")


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
    classify = task == "classify"
    for name, part in parts.items():
        for label in labels if classify else ():  # every class folder, empty or not: Ultralytics counts them
            (root / name / class_folder_name(label)).mkdir(parents=True, exist_ok=True)
        for example in part:
            file_name = f"{example.stem}.jpg"
            if classify:
                write_class_sample(root, name, file_name, example.image, example.lines, labels, _link)
            else:
                write_sample(root, name, file_name, example.image, example.lines, _link)
    return root if classify else write_data_yaml(root, labels, parts, fields)


def _link(source: Path, link: Path) -> None:
    try:
        os.link(source, link)
    except OSError:  # another file system: copy
        link.write_bytes(source.read_bytes())
