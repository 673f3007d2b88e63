"""Annotated video tracks -> the frames that become training images, and their YOLO rows.

A ``videorectangle`` region is a whole track: keyframes (``value.sequence``, 1-based
``frame``, percent ``x y width height`` and ``rotation``, ``enabled``) and the label in
``value.labels``. Label Studio draws it on a frame by these rules, which ``shown`` follows:

- before the first keyframe: nothing;
- on a keyframe: that keyframe's box, enabled or not (a disabled one shows on its frame only);
- after an enabled keyframe: the box linearly interpolated to the next keyframe (every
  property, rotation too), or held still until the video's last frame after the last one;
- after a disabled keyframe: nothing until the next keyframe starts a new visible stretch.

Which frames train (``sampled_frames``): every ``stride``-th frame of the video (1, 1 +
stride, ...) on which some track shows, plus each track's keyframes kept at least
``stride`` apart. The grid is shared by every track, so a frame with three objects is one
image with three rows, not three near copies; neighbouring frames are near copies, which is
why a stride at all. Keyframes are where the annotator placed the box rather than accepted
an interpolation, and a track shorter than the stride (a one-frame disabled keyframe) may
fall between grid frames: its first keyframe always counts. Thinning keyframes to one per
stride keeps a track imported with a keyframe on every frame from undoing the stride.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..formats import convert
from ..kinds import video_boxes
from .frames import VideoInfo, read_frames

PROPS = ("x", "y", "width", "height", "rotation")  # what Label Studio interpolates between keyframes


@dataclass(frozen=True)
class Track:
    """One annotated region: the class it trains as and its keyframes in frame order."""

    class_id: int
    keys: tuple[dict[str, Any], ...]


def keyframes_of(sequence: Iterable[Any]) -> tuple[dict[str, Any], ...]:
    """The usable keyframes of a ``sequence``, in frame order (one without a frame or a box is left out)."""
    usable = [k for k in sequence if isinstance(k, dict) and isinstance(k.get("frame"), (int, float))
              and all(isinstance(k.get(p), (int, float)) for p in PROPS[:4])]
    return tuple(sorted(usable, key=lambda k: k["frame"]))


def shown(keys: Sequence[dict[str, Any]], frame: int, last_frame: int) -> dict[str, float] | None:
    """The value (percent ``x y width height rotation``) Label Studio draws on ``frame``; None: hidden."""
    before = after = None
    for key in keys:
        if key["frame"] == frame:
            return {p: float(key.get(p) or 0) for p in PROPS}
        if key["frame"] > frame:
            after = key
            break
        before = key
    if before is None or not before.get("enabled", True) or frame > last_frame:
        return None
    if after is None:  # the last keyframe, enabled: held until the video ends
        return {p: float(before.get(p) or 0) for p in PROPS}
    t = (frame - before["frame"]) / (after["frame"] - before["frame"])
    return {p: float(before.get(p) or 0) * (1 - t) + float(after.get(p) or 0) * t for p in PROPS}


def visible(keys: Sequence[dict[str, Any]], last_frame: int) -> list[tuple[int, int]]:
    """The track's visible stretches as (first, last) frames, inclusive."""
    spans: list[tuple[int, int]] = []
    for index, key in enumerate(keys):
        first = int(key["frame"])
        if first > last_frame:
            break
        end = first
        if key.get("enabled", True):
            end = int(keys[index + 1]["frame"]) - 1 if index + 1 < len(keys) else last_frame
        end = min(max(end, first), last_frame)
        if spans and spans[-1][1] >= first - 1:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((first, end))
    return spans


def sampled_frames(tracks: Sequence[Track], stride: int, last_frame: int) -> list[int]:
    """The frames that become training images (the rule and its reasons: the module docstring)."""
    if stride < 1:
        raise ValueError("stride must be at least 1")
    chosen: set[int] = set()
    for track in tracks:
        for first, last in visible(track.keys, last_frame):
            grid_start = first + (-(first - 1)) % stride  # the first frame 1 + k * stride in the stretch
            chosen.update(range(grid_start, last + 1, stride))
        kept = None
        for key in track.keys:
            frame = int(key["frame"])
            if 1 <= frame <= last_frame and (kept is None or frame - kept >= stride):
                chosen.add(frame)
                kept = frame
    return sorted(chosen)


def pixel_box(value: dict[str, float], width: int, height: int) -> tuple[float, float, float, float]:
    """A shown value as x1 y1 x2 y2 pixels of the frame (a rotated box: its axis-aligned bounds)."""
    x, y, w, h = value["x"], value["y"], value["width"], value["height"]
    if value.get("rotation"):
        x, y, w, h = convert.points_bounds(convert.rotated_corners(x, y, w, h, value["rotation"], width, height))
    return x / 100 * width, y / 100 * height, (x + w) / 100 * width, (y + h) / 100 * height


def frame_boxes(sequence: Sequence[dict[str, Any]], info: VideoInfo, frame: int) -> np.ndarray | None:
    """The pixel box Label Studio shows on ``frame`` for one region's ``sequence`` (None where hidden)."""
    value = shown(keyframes_of(sequence), frame, info.frames)
    return None if value is None else np.array(pixel_box(value, info.width, info.height))


def tracks(annotation: dict[str, Any], from_name: str, to_name: str, class_ids: dict[str, int]) -> list[Track]:
    """The annotation's tracks of one control whose label is a class (others have nothing to train)."""
    out = []
    for region in annotation.get("result") or []:
        if not isinstance(region, dict) or region.get("type") != video_boxes.KIND.RESULT_TYPE \
                or region.get("from_name") != from_name or region.get("to_name") != to_name:
            continue
        value = region.get("value") or {}
        label = next((name for name in value.get(video_boxes.LABEL_KEY) or [] if name in class_ids), None)
        keys = keyframes_of(value.get("sequence") or [])
        if label is not None and keys:
            out.append(Track(class_ids[label], keys))
    return out


def frame_rows(tracks: Sequence[Track], frame: int, width: int, height: int, last_frame: int) -> list[str]:
    """The YOLO rows of one frame: every track shown on it, by the boxes' row format (clipped to the frame)."""
    rows = []
    for track in tracks:
        value = shown(track.keys, frame, last_frame)
        if value is not None:
            region = {"value": value, "original_width": width, "original_height": height}
            row = video_boxes.KIND.to_line(region, track.class_id)
            if row is not None:
                rows.append(row)
    return rows


def write_frames(path: Path, tracks: Sequence[Track], info: VideoInfo, stride: int, folder: Path, stem: str
                 ) -> list[tuple[int, Path, tuple[str, ...]]]:
    """The sampled frames of one video as JPEG files ``<stem>-frame-<n>.jpg`` in ``folder``, with their rows.

    (frame number, image, rows) per frame that has rows; one decoded frame in memory at a time.
    A frame where every shown box lies outside the picture is not written (nothing to learn).
    """
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for number, pixels in read_frames(path, wanted=sampled_frames(tracks, stride, info.frames)):
        height, width = pixels.shape[:2]
        rows = frame_rows(tracks, number, width, height, info.frames)
        if not rows:
            continue
        image = folder / f"{stem}-frame-{number:06d}.jpg"
        tmp = folder / f".{image.name}.{os.getpid()}.jpg"
        if not cv2.imwrite(str(tmp), pixels, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OSError(f"could not write {image}")
        os.replace(tmp, image)
        out.append((number, image, tuple(rows)))
    return out
