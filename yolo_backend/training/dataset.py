"""Which control a run trains, and the one dispatcher that builds its dataset, image or video.

``build_dataset`` picks the builder by the control's media, as Ultralytics' ``data/build.py``
picks a dataset class per kind: ``image_dataset`` (upright images, one example per task) or
``video_dataset`` (sampled frames of whole videos). Both return the same ``examples.Dataset``,
held out by the one split rule (``core.split``: a picture, or a video's frames, on one side).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import kinds
from ..config import Settings
from ..errors import LabelConfigError
from ..formats import label_config
from ..formats.controls import ControlSpec
from ..media.fetcher import MediaFetcher
from .examples import Dataset
from .image_dataset import build_from_images
from .video_dataset import build_from_video


def training_control(config_xml: str) -> ControlSpec:
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


def build_dataset(root: Path, tasks: list[dict[str, Any]], config_xml: str, settings: Settings,
                  media: MediaFetcher | None = None, project: str | None = None,
                  kind: kinds.Kind | None = None) -> Dataset:
    """The whole step: choose annotations, fetch images (or a video's frames), hold out, carve val, write.

    ``kind`` (default: the control's own) decides the rows, the classes and the layout.
    """
    spec = training_control(config_xml)
    kind = kind or kinds.for_result(spec.kind, spec.task)
    media = media or MediaFetcher.from_settings(settings)
    if spec.media == "video":
        return build_from_video(root, tasks, spec, settings, media, kind)
    return build_from_images(root, tasks, spec, settings, media, project, kind)
