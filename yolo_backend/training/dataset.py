"""Which control a run trains, and the one dispatcher that builds its dataset, image or video.

``build_dataset`` picks the builder by the control's media (``formats.media_axis``), as
Ultralytics' ``data/build.py`` picks a dataset class per kind: ``image_dataset`` (upright
images, one example per task) or ``video_dataset`` (sampled frames of whole videos). Both
return the same ``examples.Dataset``, held out by the one split rule (``core.split``: a
picture, or a video's frames, on one side). ``BUILDERS`` is the whole of what the media
changes in a run: the dataset, the size a run needs, the counts it records, and how its
holdout is predicted as served; a run looks its dataset's row up once (``for_dataset``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import kinds
from ..config import Settings
from ..errors import LabelConfigError
from ..formats import label_config, media_axis
from ..formats.controls import ControlSpec
from ..media.fetcher import MediaFetcher
from . import image_dataset, scoring, video_dataset
from .examples import Dataset
from .holdout import predict_holdout
from .video_scoring import predict_tracks


@dataclass(frozen=True)
class Builder:
    """What a control's media changes in a run, one row per media."""

    build: Callable[..., Dataset]  # (root, tasks, spec, settings, media, project, kind) -> its dataset
    too_small: Callable[[Dataset, Settings], str | None]  # why a run cannot start on it; None: it can
    counts: Callable[[Dataset], dict[str, int]]  # what a run records beside its image counts
    predict: Callable[..., list[scoring.Image]]  # (checkpoint, holdout, spec, settings, kind, engine=None)


BUILDERS = {
    media_axis.IMAGE: Builder(image_dataset.build_from_images, image_dataset.too_small, lambda dataset: {},
                              predict_holdout),
    media_axis.VIDEO: Builder(video_dataset.build_from_video, video_dataset.too_small, video_dataset.counts,
                              predict_tracks),  # a video's holdout frames: from the tracks serving draws on them
}


def for_dataset(dataset: Dataset) -> Builder:
    """The row of ``dataset``'s media."""
    return BUILDERS[media_axis.AXIS[dataset.media]]


def training_control(config_xml: str) -> ControlSpec:
    """The control whose labels become the classes: the first of a registered kind (an Image's, or a Video's).

    A control no checkpoint can learn (``kinds.refusal``: ``<Choices choice="multiple">``, whose images
    would sit in two class folders at once) is passed over; LabelConfigError with the reason when none is left.
    """
    specs = label_config.parse(config_xml)
    usable = [spec for spec in specs if _not_trained(spec) is None]
    if not usable:
        raise LabelConfigError("; ".join(str(_not_trained(spec)) for spec in specs))
    return usable[0]


def _not_trained(spec: ControlSpec) -> str | None:
    """Why a control is never the one trained: its kind refuses it, or it is a smart click tool (clicks, no objects)."""
    if spec.click_tool:
        return (f"control {spec.from_name!r} is a smart keypoint tool: its points are clicks asking for an object, "
                "not objects to learn")
    return kinds.refusal(spec)


def passed_over(config_xml: str) -> dict[str, str]:
    """Controls ``training_control`` passes over, each with the reason (recorded in a run's metrics)."""
    return {spec.from_name: reason for spec in label_config.parse(config_xml) if (reason := _not_trained(spec))}


def build_dataset(root: Path, tasks: list[dict[str, Any]], config_xml: str, settings: Settings,
                  media: MediaFetcher | None = None, project: str | None = None,
                  kind: kinds.Kind | None = None) -> Dataset:
    """The whole step: choose annotations, fetch images (or a video's frames), hold out, carve val, write.

    ``kind`` (default: the control's own) decides the rows, the classes and the layout.
    """
    spec = training_control(config_xml)
    kind = kind or kinds.for_result(spec.kind, spec.task)
    media = media or MediaFetcher.from_settings(settings)
    return BUILDERS[media_axis.of(spec)].build(root, tasks, spec, settings, media, project, kind)
