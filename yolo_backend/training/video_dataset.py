"""A ``<VideoRectangle>`` control's dataset: annotated tracks -> frames of whole videos in each part.

Its tracks' boxes, as Label Studio interpolates them, on frames sampled with
TRAIN_FRAME_STRIDE (``video.annotations``), decoded once into the run's folder. A video's
frames are split together (``core.split`` groups them by the video file's digest, so the same
video in two tasks is one group): never a frame of a training video in the holdout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import kinds
from ..config import Settings
from ..core.split import file_digest, split
from ..errors import BackendError
from ..formats.controls import ControlSpec
from ..formats.ls_tasks import chosen_annotation
from ..media.fetcher import MediaFetcher
from ..video import annotations, frames
from .examples import Dataset, Example, write_dataset

log = logging.getLogger(__name__)


def build_from_video(root: Path, tasks: list[dict[str, Any]], spec: ControlSpec, settings: Settings,
                      media: MediaFetcher, kind: kinds.Kind) -> Dataset:
    """``build_dataset`` for a video control: frames of whole videos in each part.

    The frames are written beside the dataset (``<root>-frames``), in the run's folder: a
    run decodes its videos again, as a changed track changes which frames train.
    """
    examples, skipped = collect_frames(tasks, spec, settings, media, root.with_name(f"{root.name}-frames"), kind)
    rest, holdout = split(examples, settings.train_holdout, settings.train_min_holdout)
    train, val = split(rest, 0.15, 1, salt="val", keep=1)  # carve_val's share, by video
    val = val or list(train)  # one training video: Ultralytics still needs a val split
    labels = kind.train_classes(spec)
    data = write_dataset(root, {"train": train, "val": val}, labels, kind.TRAIN_TASK)
    return Dataset(data, labels, train, val, holdout, skipped, spec.from_name, kind.TRAIN_TASK, "video")


def collect_frames(tasks: list[dict[str, Any]], spec: ControlSpec, settings: Settings,
                   media: MediaFetcher, folder: Path, kind: kinds.Kind) -> tuple[list[Example], list[str]]:
    """Sampled frames of every video task with annotated tracks; the reasons for the tasks left out.

    A task whose annotation has no track of the control gives no frames (unannotated is not
    empty); a video that cannot be fetched, probed or read leaves its task out, not the run.
    """
    examples, skipped = [], []
    class_ids = {name: index for index, name in enumerate(kind.train_classes(spec))}
    for task in tasks:
        annotation = chosen_annotation(task)
        tracks = annotations.tracks(annotation, spec.from_name, spec.to_name, class_ids) if annotation else []
        if not tracks:
            continue
        task_id = task.get("id", len(examples))
        try:
            path = media.video_path((task.get("data") or {}).get(spec.data_key), task_id)
            info = frames.probe(path, settings.max_video_seconds, settings.max_image_pixels)
            written = annotations.write_frames(path, tracks, info, settings.train_frame_stride, folder,
                                               f"task-{task_id}")
            content = file_digest(path)  # the same video in two tasks is one group of the split
        except (BackendError, OSError) as exc:
            skipped.append(f"task {task_id}: {exc}")
            log.warning("training: video task %s left out: %s", task_id, exc)
            continue
        examples += [Example(task_id, image, rows, number, path, content) for number, image, rows in written]
    return examples, skipped
