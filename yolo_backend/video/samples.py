"""Annotated video tasks -> sampled frames with their rows: the one collector of training and the export.

Per task, the chosen annotation's tracks of the control (``annotations.tracks``) are drawn on
every n-th frame as Label Studio interpolates them (``annotations.write_frames``), each frame a
JPEG file in ``folder`` with its rows. A training run (``training.video_dataset``) and
``yolo-ls export-yolo`` (``formats.yolo_export``) both sample this way, so an exported video
dataset holds the frames a run trains on. A task with no track of the control gives no frames
(unannotated is not empty); a video that cannot be fetched, probed or read leaves its task out,
never the run or the export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.split import file_digest
from ..errors import BackendError
from ..formats.controls import ControlSpec
from ..formats.ls_tasks import chosen_annotation
from . import annotations, frames


@dataclass(frozen=True)
class Frame:
    """One sampled frame: its task, number (1-based), JPEG file and rows, and the video it was read from."""

    task_id: Any
    number: int
    image: Path
    rows: tuple[str, ...]
    video: Path
    content: str  # ``file_digest`` of the video: a split keeps its frames (in any task) on one side


@dataclass
class Sampled:
    """The frames of every readable annotated video, and the tasks that gave none."""

    frames: list[Frame] = field(default_factory=list)
    untracked: list[Any] = field(default_factory=list)  # task ids whose annotation has no track of the control
    failed: list[tuple[Any, Exception]] = field(default_factory=list)  # (task id, why its video gave no frames)


def sample_tasks(tasks: Iterable[dict[str, Any]], spec: ControlSpec, class_ids: dict[str, int],
                 fetch: Callable[[dict[str, Any]], Path], folder: Path, stride: int,
                 max_seconds: float | None = None, max_pixels: int | None = None,
                 tolerate: tuple[type[Exception], ...] = (BackendError, OSError)) -> Sampled:
    """Every ``stride``-th frame where a track of ``spec`` shows, of each task's video (``fetch``: task -> file).

    ``tolerate``: the errors that leave one task out (the export tolerates any, one bad video
    never stops it); anything else propagates.
    """
    out = Sampled()
    for index, task in enumerate(tasks):
        task_id, annotation = task.get("id", index), chosen_annotation(task)
        tracks = annotations.tracks(annotation, spec.from_name, spec.to_name, class_ids) if annotation else []
        if not tracks:
            out.untracked.append(task_id)
            continue
        try:
            path = fetch(task)
            info = frames.probe(path, max_seconds, max_pixels)
            written = annotations.write_frames(path, tracks, info, stride, folder, f"task-{task_id}")
            content = file_digest(path)  # the same video in two tasks is one group of every split
        except tolerate as exc:
            out.failed.append((task_id, exc))
            continue
        out.frames += [Frame(task_id, number, image, rows, path, content) for number, image, rows in written]
    return out
