"""A track -> Label Studio's ``videorectangle`` region: the few keyframes it interpolates between.

Label Studio draws a video box on every frame by linear interpolation between keyframes,
and hides it after a keyframe whose ``enabled`` is false. So a track needs a keyframe only
where interpolation would drift from the tracked box: ``thin`` keeps the ends of each
visible stretch and, recursively, the frame that interpolation gets worst, until every
tracked frame is within ``min_iou`` of its interpolated box. A gap longer than the stride
(the object left the frame, or was lost) ends the stretch: its last keyframe is disabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..formats import convert
from ..formats.overlap import paired_box_iou
from ..kinds import video_boxes
from .annotations import frame_boxes as frame_boxes  # re-exported: the reader of what ``sequence`` writes
from .frames import VideoInfo
from .tracking import TrackPoint

DECIMALS = 4


def stretches(points: Sequence[TrackPoint], stride: int = 1) -> list[list[TrackPoint]]:
    """The track split where it skips more than ``stride`` frames (in frame order)."""
    out: list[list[TrackPoint]] = []
    for point in sorted(points, key=lambda p: p.frame):
        if out and point.frame - out[-1][-1].frame <= stride:
            out[-1].append(point)
        else:
            out.append([point])
    return out


def interpolated(a: TrackPoint, b: TrackPoint, frame: int) -> np.ndarray:
    """The box Label Studio draws on ``frame`` between keyframes ``a`` and ``b`` (linear in each coordinate)."""
    t = (frame - a.frame) / (b.frame - a.frame)
    return np.asarray(a.box) * (1 - t) + np.asarray(b.box) * t


def thin(stretch: Sequence[TrackPoint], min_iou: float = 0.9) -> list[TrackPoint]:
    """The keyframes of one visible stretch: every point of it is within ``min_iou`` of the interpolation."""
    if len(stretch) <= 2:
        return list(stretch)
    keep = {0, len(stretch) - 1}
    pending = [(0, len(stretch) - 1)]
    while pending:
        first, last = pending.pop()
        if last - first < 2:
            continue
        inside = range(first + 1, last)
        drawn = np.array([interpolated(stretch[first], stretch[last], stretch[i].frame) for i in inside])
        truth = np.array([stretch[i].box for i in inside])
        ious = paired_box_iou(drawn, truth)  # a long track's n x n matrix would not fit in memory
        worst = int(np.argmin(ious))
        if ious[worst] < min_iou:
            split = first + 1 + worst
            keep.add(split)
            pending += [(first, split), (split, last)]
    return [stretch[i] for i in sorted(keep)]


def sequence(points: Sequence[TrackPoint], info: VideoInfo, stride: int = 1,
             min_iou: float = 0.9) -> list[dict[str, Any]]:
    """Label Studio's ``sequence`` for a track: thinned keyframes, the last of each stretch disabled."""
    out: list[dict[str, Any]] = []
    for stretch in stretches(points, stride):
        kept = thin(stretch, min_iou)
        for index, point in enumerate(kept):
            x1, y1, x2, y2 = point.box
            out.append({"frame": point.frame, "enabled": index < len(kept) - 1, "rotation": 0,
                        "x": round(x1 / info.width * 100, DECIMALS), "y": round(y1 / info.height * 100, DECIMALS),
                        "width": round((x2 - x1) / info.width * 100, DECIMALS),
                        "height": round((y2 - y1) / info.height * 100, DECIMALS),
                        "time": round(point.frame / info.fps, DECIMALS)})
    return out


def video_region(points: Sequence[TrackPoint], label: str, info: VideoInfo, *, from_name: str, to_name: str,
                 region_id: str, stride: int = 1, min_iou: float = 0.9) -> dict[str, Any]:
    """One track as one ``videorectangle`` region (``convert.region``'s envelope; score: its mean score)."""
    value = {"framesCount": info.frames, "duration": round(info.duration, DECIMALS),
             "sequence": sequence(points, info, stride, min_iou)}
    out = convert.region(value, label, result_type=video_boxes.KIND.RESULT_TYPE, from_name=from_name,
                         to_name=to_name, size=None, region_id=region_id,
                         score=float(np.mean([p.score for p in points])), label_key=video_boxes.LABEL_KEY)
    return {**out, "origin": "prediction"}

