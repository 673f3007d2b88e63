"""Image or video: a control's second axis, beside its kind, named in one table.

A control is bound to an ``<Image>`` or a ``<Video>`` (``ControlSpec.media``). Each place that
treats the two differently looks the control's media up once, in its own layer's table keyed
by these rows, instead of branching on ``"video"``:

- here: where a task's file comes from, and how many predictions ``yolo-ls prelabel`` stores
  per request;
- ``serving.backend``: image controls are fetched, decoded and detected in groups; video
  controls are streamed to disk and tracked, a task at a time (``by_media``);
- ``training.dataset.BUILDERS``: upright images, one example per task, or sampled frames split
  by video, with the size a run needs and the counts it records;
- ``training.fitting.PREDICTORS``: a holdout predicted image by image, or from the tracks
  serving draws on a video;
- ``formats.yolo_export.WRITERS``: copied images, or sampled frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .controls import ControlSpec

if TYPE_CHECKING:
    from ..media.fetcher import MediaFetcher


class Fetch(Protocol):
    def __call__(self, fetcher: MediaFetcher, url: str, task_id: Any = None) -> Path: ...


def _image_file(fetcher: MediaFetcher, url: str, task_id: Any = None) -> Path:
    return fetcher.local_path(url, task_id)


def _video_file(fetcher: MediaFetcher, url: str, task_id: Any = None) -> Path:
    return fetcher.video_path(url, task_id)


@dataclass(frozen=True)
class Media:
    """One row of the axis: what an ``<Image>`` or a ``<Video>`` control changes below serving and training."""

    name: str  # ControlSpec.media
    file: Fetch  # a task's file on disk: the image, or the whole video streamed there (MAX_VIDEO_MB)
    prelabel_chunk: int  # predictions ``yolo-ls prelabel`` stores per request, unless --chunk-size says


IMAGE = Media("image", _image_file, 50)
VIDEO = Media("video", _video_file, 1)  # a video is stored as soon as it is tracked: a stop loses one at most
AXIS = {media.name: media for media in (IMAGE, VIDEO)}


def of(spec: ControlSpec | None) -> Media:
    """The row of ``spec``'s media; no control (an export without a label config) is images."""
    return IMAGE if spec is None else AXIS[spec.media]


def by_media(specs: Iterable[ControlSpec]) -> dict[Media, list[ControlSpec]]:
    """``specs`` under their media's row, in order; every row present, an unused one empty."""
    out: dict[Media, list[ControlSpec]] = {media: [] for media in AXIS.values()}
    for spec in specs:
        out[of(spec)].append(spec)
    return out
