"""Label Studio annotations -> an Ultralytics-layout YOLO dataset, ready for ``yolo train``.

Input is Label Studio's JSON export (a file, or fetched from a project by ``ls_client``).
Per task the ground-truth annotation wins, else the latest one; skipped (cancelled)
annotations are left out. Label rows come from each region's kind (``kinds``), by the
function training uses. The split is training's: val is exactly the holdout a training run
with ``TRAIN_HOLDOUT``/``TRAIN_MIN_HOLDOUT`` equal to ``--val``/``--min-val`` scores on
(ranked by the digest of each image's bytes, with its floor), and test, when asked for, comes
out of the training part by another salt. So a picture lands in the same split on every run,
and the same picture in two tasks lands in one split.

A ``<VideoRectangle>`` control exports frames (``write_video_frames``): the frames
training samples from each annotated video (``video.samples``, training's collector), named
``task-<id>-frame-<n>``, with the interpolated boxes as rows; val is training's holdout of
whole videos. The control's media picks the writer (``WRITERS``, ``media_axis``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image

from .. import kinds
from ..core.split import file_digest, rank, split  # the same rules training uses
from ..progress import bar
from ..video import samples
from . import media_axis
from .controls import ControlSpec
from .ls_tasks import chosen_annotation  # the annotation training uses
from .yolo_folder import IMAGE_SUFFIXES, write_class_sample, write_data_yaml, write_sample

__all__ = ["chosen_annotation"]


@dataclass
class Export:
    """What was written: images per split, boxes, and tasks left out with the reason."""

    splits: Counter = field(default_factory=Counter)
    boxes: int = 0
    left_out: list[tuple[Any, str]] = field(default_factory=list)

    def summary(self) -> str:
        per_split = ", ".join(f"{name} {count}" for name, count in sorted(self.splits.items())) or "none"
        return f"{sum(self.splits.values())} images ({per_split}), {self.boxes} boxes; {len(self.left_out)} left out"


def label_names(tasks: Iterable[dict[str, Any]]) -> list[str]:
    """Every label of a registered kind used in the kept annotations, sorted (when no class list is given)."""
    seen: set[str] = set()
    for task in tasks:
        for region in (chosen_annotation(task) or {}).get("result") or []:
            if region.get("type") in kinds.RESULT_TYPES:
                seen.update((region.get("value") or {}).get(region["type"]) or [])
    return sorted(seen)


def split_names(keys: Sequence[Any], val: float, test: float, min_val: int) -> list[str]:
    """train / val / test per task, by training's rules (``core.split``), in the order given.

    ``keys``: what each task is ranked by, the digest of its image (``file_digest``), so equal
    keys share a split. val is training's holdout for ``val`` and the floor ``min_val`` (no val
    when ``val`` is 0); test is a ``test`` share of all tasks taken from the rest, ranked with
    the salt "test".
    """
    names = ["train"] * len(keys)
    rest, held = split(list(enumerate(keys)), val, min_val if val > 0 else 0, key=lambda pair: pair[1])
    for index, _ in held:
        names[index] = "val"
    for index, key in rest:
        if rank(key, "test") < test / (1 - val):
            names[index] = "test"
    return names


def image_name(url: str) -> str:
    """The file name a task URL points at (local-files ``?d=``, upload path or any URL)."""
    parts = urlsplit(url)
    inner = parse_qs(parts.query).get("d")
    name = PurePosixPath(unquote(inner[0] if inner else parts.path)).name
    return name or hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ExportOptions:
    data_key: str | None = None  # task data field holding the image; None = the only/first one
    from_name: str | None = None  # only this control's regions; None = every control of a registered kind
    val: float = 0.2  # training's TRAIN_HOLDOUT default
    test: float = 0.0
    min_val: int = 5  # training's TRAIN_MIN_HOLDOUT default: the val (holdout) floor
    task: str | None = None  # the Ultralytics task ("obb": oriented-box rows); regions of other kinds left out
    spec: ControlSpec | None = None  # the control exported (its kind writes the rows: keypoints, choices)
    frame_stride: int = 10  # a video control: every n-th frame (training's TRAIN_FRAME_STRIDE default)
    max_video_seconds: float | None = None  # longer videos are left out (MAX_VIDEO_SECONDS)

    def __post_init__(self) -> None:
        if not (0 <= self.val < 1 and self.test >= 0 and self.val + self.test < 1 and self.min_val >= 0):
            raise ValueError(f"--val {self.val} and --test {self.test} must be shares in [0, 1) that leave tasks "
                             f"to train on, and --min-val {self.min_val} at least 0")


def write_dataset(tasks: Sequence[dict[str, Any]], out: Path, names: Sequence[str],
                  fetch: Callable[[str, Any], Path], options: ExportOptions = ExportOptions(),
                  progress: bool | None = None) -> Export:
    """Images and labels under ``out/images|labels/<split>``, plus ``data.yaml`` and ``classes.txt``.

    Images are fetched first and split after, as training splits the tasks whose images it
    could read: the val split is the holdout training would score on.
    """
    _check_empty(out)
    return WRITERS[media_axis.of(options.spec)](tasks, out, names, fetch, options, progress)


def write_images(tasks: Sequence[dict[str, Any]], out: Path, names: Sequence[str],
                 fetch: Callable[[str, Any], Path], options: ExportOptions, progress: bool | None = None) -> Export:
    """An image control's dataset (no label config: every registered kind's regions), split by image content."""
    class_ids = {name: index for index, name in enumerate(names)}
    report, used = Export(), set()
    fetched = _fetch_all(tasks, fetch, options.data_key, report, progress)
    splits = split_names([file_digest(source) for _, _, source, _ in fetched], options.val, options.test,
                         options.min_val)  # by content, as training splits: a re-imported picture stays on its side
    spec = options.spec
    files = kinds.one_row_format([kinds.annotation_lines(annotation, class_ids, options.from_name, task=options.task,
                                                         spec=spec)
                                  for _, _, _, annotation in fetched])
    folders = options.task == "classify"  # Ultralytics' class folders: <split>/<class>/<image>
    for (key, file_name, source, _), split_name, lines in zip(fetched, splits, files):
        name = _unique(split_name, file_name, key, used)
        if folders:  # an image with several choices sits in each of their folders, as training writes it
            write_class_sample(out, split_name, name, source, lines, names)
        else:  # copied as it is, EXIF kept: trainers apply it, as browsers do
            write_sample(out, split_name, name, source, lines)
        report.splits[split_name] += 1
        report.boxes += len(lines)
    fields = kinds.for_result(spec.kind, options.task).dataset_fields(spec) if spec else {}
    _finish(out, names, report, fields, folders)
    return report


def write_video_frames(tasks: Sequence[dict[str, Any]], out: Path, names: Sequence[str],
                       fetch: Callable[[str, Any], Path], options: ExportOptions, progress: bool | None = None
                       ) -> Export:
    """A video control's dataset: training's sampled frames of every annotated video, split by video.

    Frames are decoded into ``out/.frames`` first and moved into their split after, as the
    split (training's holdout: whole videos, at least ``min_val`` frames) needs every
    video's frame count; an unreadable video leaves its task out.
    """
    spec = options.spec
    assert spec is not None

    def video(task: dict[str, Any]) -> Path:
        return fetch(_image_url(task, options.data_key or spec.data_key), task.get("id"))

    staging, report = out / ".frames", Export()
    sampled = samples.sample_tasks(bar(tasks, "tasks", "task", show=progress), spec,
                                   {name: index for index, name in enumerate(names)}, video, staging,
                                   options.frame_stride, options.max_video_seconds,
                                   tolerate=(Exception,))  # one bad video never stops the export
    report.left_out += [(tid, "no annotated track of the control (or only skipped annotations)")
                        for tid in sampled.untracked]
    report.left_out += [(tid, f"{type(exc).__name__}: {exc}") for tid, exc in sampled.failed]
    splits = split_names([frame.content for frame in sampled.frames], options.val, options.test, options.min_val)
    for frame, split_name in zip(sampled.frames, splits):  # by the video's digest, as training splits its frames
        write_sample(out, split_name, frame.image.name, frame.image, frame.rows, os.replace)
        report.splits[split_name] += 1
        report.boxes += len(frame.rows)
    shutil.rmtree(staging, ignore_errors=True)
    _finish(out, names, report)
    return report


WRITERS = {media_axis.IMAGE: write_images, media_axis.VIDEO: write_video_frames}  # the control's media picks one


def _fetch_all(tasks: Sequence[dict[str, Any]], fetch: Callable[[str, Any], Path], data_key: str | None,
               report: Export, progress: bool | None) -> list[tuple[Any, str, Path, dict[str, Any]]]:
    """(task id, else URL; image file name; local file; chosen annotation) of every task that can be exported."""
    fetched = []
    for task in bar(tasks, "tasks", "task", show=progress):
        tid, annotation = task.get("id"), chosen_annotation(task)
        if annotation is None:
            report.left_out.append((tid, "no annotation (or only skipped ones)"))
            continue
        try:
            url = _image_url(task, data_key)
            source = fetch(url, tid)
            file_name = _with_suffix(image_name(url), source)  # an unreadable image is left out before the split
        except Exception as exc:  # one bad task never stops the export
            report.left_out.append((tid, f"{type(exc).__name__}: {exc}"))
            continue
        fetched.append((tid if tid is not None else url, file_name, source, annotation))
    return fetched


def _finish(out: Path, names: Sequence[str], report: Export, fields: dict[str, Any] | None = None,
            folders: bool = False) -> None:
    """``data.yaml`` (``yolo_folder.write_data_yaml``, training's writer) naming the splits written, and
    ``classes.txt``; with no val images, val points at train so training still runs."""
    write_data_yaml(out, names, [name for name, count in report.splits.items() if count], fields, folders)
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in names))


def _image_url(task: dict[str, Any], data_key: str | None) -> str:
    data = task.get("data") or {}
    key = data_key or next(iter(data), None)
    url = data.get(key) if key else None
    if not isinstance(url, str) or not url:
        raise ValueError(f"task data has no image URL under {key!r}: pass --data-key")
    return url


def _with_suffix(name: str, source: Path) -> str:
    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
        return name
    with Image.open(source) as img:  # e.g. a URL without extension: name it by its real format
        return f"{name}.{(img.format or 'jpg').lower()}"


def _unique(split: str, name: str, key: Any, used: set[tuple[str, str]]) -> str:
    """Two tasks with the same file name in one split: the later one gets a short hash of its key in front."""
    stem = Path(name).stem
    if (split, stem) in used:
        name = f"{hashlib.sha256(str(key).encode()).hexdigest()[:8]}-{name}"
    used.add((split, Path(name).stem))
    return name


def _check_empty(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: give a new folder, so old images cannot mix into the dataset")
