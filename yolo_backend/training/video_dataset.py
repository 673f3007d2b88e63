"""A ``<VideoRectangle>`` control's dataset: annotated tracks -> frames of whole videos in each part.

Its tracks' boxes, as Label Studio interpolates them, on frames sampled with
TRAIN_FRAME_STRIDE (``video.samples``, the export's collector too), decoded once into the
run's folder. A video's frames are split together (``core.split`` groups them by the video
file's digest, so the same video in two tasks is one group): never a frame of a training video
in the holdout, nor of a val video in training (``carve_val``, the images' rule).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import kinds
from ..config import Settings
from ..core.split import split
from ..formats.controls import ControlSpec
from ..media.fetcher import MediaFetcher
from ..video import samples
from .examples import Dataset, Example, carve_val, needed, write_dataset

log = logging.getLogger(__name__)


def build_from_video(root: Path, tasks: list[dict[str, Any]], spec: ControlSpec, settings: Settings,
                     media: MediaFetcher, project: str | None, kind: kinds.Kind) -> Dataset:
    """``build_dataset`` for a video control: frames of whole videos in each part.

    The frames are written beside the dataset (``<root>-frames``), in the run's folder: a
    run decodes its videos again, as a changed track changes which frames train.
    """
    examples, skipped = collect_frames(tasks, spec, settings, media, root.with_name(f"{root.name}-frames"), kind)
    rest, holdout = split(examples, settings.train_holdout, settings.train_min_holdout)
    train, val = carve_val(rest)  # whole videos, as every split; one training video: val is train
    labels = kind.train_classes(spec)
    data = write_dataset(root, {"train": train, "val": val}, labels, kind.TRAIN_TASK)
    return Dataset(data, labels, train, val, holdout, skipped, spec.from_name, kind.TRAIN_TASK, "video")


def too_small(dataset: Dataset, settings: Settings) -> str | None:
    """Why a run cannot start on ``dataset``; None when it can.

    Frames count as images do (a frame is a training image), but the holdout is whole videos:
    it needs TRAIN_MIN_HOLDOUT frames of videos that train nothing, and some video must be
    left to train on, so one annotated video can never start a run.
    """
    (need, floors), labeled = needed(settings), dataset.labeled
    videos = _videos(dataset.train) + _videos(dataset.holdout)
    if labeled < need:
        return f"need {need - labeled} more annotated video frames ({labeled} sampled from {videos} videos at " \
               f"TRAIN_FRAME_STRIDE={settings.train_frame_stride}, of {need}: {floors})"
    if not dataset.train or len(dataset.holdout) < settings.train_min_holdout:
        return f"need another annotated video: the holdout is whole videos, never frames of a training video, and " \
               f"{videos} video(s) give {len(dataset.holdout)} held-out frames (TRAIN_MIN_HOLDOUT=" \
               f"{settings.train_min_holdout}) and {_videos(dataset.train)} to train on"
    return None


def counts(dataset: Dataset) -> dict[str, int]:
    """What a run records beside its frame counts: the videos it trained on and was judged on."""
    return {"train_videos": _videos(dataset.train), "holdout_videos": _videos(dataset.holdout)}


def _videos(examples: list[Example]) -> int:
    return len({example.task_id for example in examples})


def collect_frames(tasks: list[dict[str, Any]], spec: ControlSpec, settings: Settings,
                   media: MediaFetcher, folder: Path, kind: kinds.Kind) -> tuple[list[Example], list[str]]:
    """Sampled frames of every video task with annotated tracks (``video.samples``); why tasks were left out."""
    def fetch(task: dict[str, Any]) -> Path:
        return media.video_path((task.get("data") or {}).get(spec.data_key), task.get("id"))

    class_ids = {name: index for index, name in enumerate(kind.train_classes(spec))}
    sampled = samples.sample_tasks(tasks, spec, class_ids, fetch, folder, settings.train_frame_stride,
                                   settings.max_video_seconds, settings.max_image_pixels)
    for task_id, exc in sampled.failed:
        log.warning("training: video task %s left out: %s", task_id, exc)
    examples = [Example(f.task_id, f.image, f.rows, f.number, f.video, f.content) for f in sampled.frames]
    return examples, [f"task {task_id}: {exc}" for task_id, exc in sampled.failed]
