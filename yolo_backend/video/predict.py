"""One video task's regions: frames -> detector -> tracker -> one ``videorectangle`` region per track.

Per control (``<VideoRectangle model_tracker="botsort" model_conf="0.1" model_iou="0.7"
model_frame_stride="2">``), else the service's VIDEO_* settings. A tracker yaml is only read
from under MODEL_ROOT, like checkpoints. Label Studio waits 100 s for a whole ``/predict``:
with a deadline, tracking stops with a clear error as soon as the frames left cannot be
done in time (``yolo-ls prelabel`` passes none and reports progress instead).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..core.checkpoints import safe_model_path
from ..errors import LabelConfigError, MediaError
from ..formats import convert
from ..formats.controls import ControlSpec
from ..kinds import video_boxes
from . import keyframes, tracking
from .frames import VideoInfo, read_frames

log = logging.getLogger(__name__)

TRACK_CONF = 0.1  # what the detector passes the tracker, as Ultralytics' own model.track: low boxes keep tracks alive
BATCH = 8


class VideoTooLong(MediaError):
    """Tracking would not end before the deadline; the message names the ways out."""


@dataclass(frozen=True)
class TrackOptions:
    """How one control's videos are tracked."""

    tracker: str | Path  # bytetrack | botsort | a yaml path under MODEL_ROOT
    conf: float
    iou: float | None
    stride: int
    keyframe_iou: float


def options_for(spec: ControlSpec, settings: Settings) -> TrackOptions:
    """The control's model_* attributes over the VIDEO_* settings; a bad value is a 400 naming the attribute."""
    tracker: str | Path = spec.option(video_boxes.TRACKER_ATTRIBUTE) or settings.video_tracker
    if str(tracker) not in tracking.TRACKERS:
        tracker = safe_model_path(settings.model_root_path, str(tracker))
        if not tracker.is_file():
            raise LabelConfigError(f"{video_boxes.TRACKER_ATTRIBUTE}: {tracker.name} is not a file under MODEL_ROOT "
                                   f"(use {' or '.join(tracking.TRACKERS)}, or a tracker yaml there)")
    return TrackOptions(
        tracker=tracker,
        conf=_number(spec, video_boxes.CONF_ATTRIBUTE, TRACK_CONF, float, 0.0, 1.0),
        iou=_number(spec, video_boxes.IOU_ATTRIBUTE, None, float, 0.0, 1.0),
        stride=_number(spec, video_boxes.STRIDE_ATTRIBUTE, settings.video_frame_stride, int, 1, 1000),
        keyframe_iou=settings.video_keyframe_iou,
    )


def _number(spec: ControlSpec, name: str, default: Any, kind: type, low: float, high: float) -> Any:
    raw = spec.option(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise LabelConfigError(f"{name}={raw!r} on control {spec.from_name!r}: a {kind.__name__} from {low:g} "
                               f"to {high:g}")
    return value


def video_regions(path: Path, info: VideoInfo, target: convert.Target, detector: Any, options: TrackOptions,
                  deadline: float | None = None, progress: Callable[[int, int], None] | None = None
                  ) -> list[dict[str, Any]]:
    """Every track of a labelled class whose best score passes its threshold, as one region each.

    ``deadline`` (``time.monotonic()``): stop with ``VideoTooLong`` once the frames left
    would end past it, judged from the speed so far. ``progress(done, total)`` per batch.
    """
    started = time.monotonic()
    tracks = track_video(path, info, detector, options, deadline, progress)
    regions = []
    for track_id, points in sorted(tracks.items()):
        class_id = track_class(points)
        label = target.labels.get(class_id)
        if label is None or max(p.score for p in points) < target.threshold_for(class_id):
            continue
        regions.append(keyframes.video_region(
            points, label, info, from_name=target.spec.from_name, to_name=target.spec.to_name,
            region_id=convert.region_id(target.spec.from_name, path.name, track_id), stride=options.stride,
            min_iou=options.keyframe_iou))
    log.debug("%s: %d tracks, %d regions in %.1f s", path.name, len(tracks), len(regions),
              time.monotonic() - started)
    return regions


def track_class(points: list[tracking.TrackPoint]) -> int:
    """A track's class: the one most of its points were detected as."""
    return Counter(p.class_id for p in points).most_common(1)[0][0]


def track_video(path: Path, info: VideoInfo, detector: Any, options: TrackOptions, deadline: float | None = None,
                progress: Callable[[int, int], None] | None = None) -> dict[int, list[tracking.TrackPoint]]:
    """Every track of the video (track id -> points), as served; ``video_regions`` keeps and thins them."""
    total = -(-info.frames // options.stride)
    started = time.monotonic()
    done = 0

    def detect(images: list[Any]) -> list[list[convert.Detection]]:
        nonlocal done
        found = detector.detect(images, conf=options.conf, iou=options.iou)
        done += len(images)
        if deadline is not None and done < total:
            finish = started + (time.monotonic() - started) * total / done
            if finish > deadline:
                raise VideoTooLong(
                    f"{path.name}: tracking {total} frames (of {info.frames}, stride {options.stride}) would take "
                    f"about {finish - started:.0f} s, more than Label Studio waits for /predict "
                    f"(VIDEO_PREDICT_SECONDS): pre-label long videos with `yolo-ls prelabel`, or set "
                    f"{video_boxes.STRIDE_ATTRIBUTE} on the control")
        if progress is not None:
            progress(done, total)
        return found

    return tracking.track(read_frames(path, options.stride), detect, options.tracker, batch=BATCH)
