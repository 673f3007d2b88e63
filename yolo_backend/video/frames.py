"""A video's frames, streamed: one decoded frame in memory at a time, whatever the length.

OpenCV reads the file (Ultralytics already brings it). A stride (tracking) or a set of
wanted frames (training's samples) decodes those frames and only grabs the others, which is
where the time goes on long videos. Frame numbers are 1-based, as in Label Studio's video results.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MediaError


@dataclass(frozen=True)
class VideoInfo:
    """What the container says: frames per second, frame count and the frame size in pixels."""

    fps: float
    frames: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        """Seconds; Label Studio's ``duration`` field."""
        return self.frames / self.fps if self.fps > 0 else 0.0


def probe(path: Path, max_seconds: float | None = None, max_pixels: int | None = None) -> VideoInfo:
    """Read ``path``'s header; no video, or one longer or larger than the bounds, is a ``MediaError`` (422)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MediaError(f"{path.name}: not a video OpenCV can read")
        info = VideoInfo(fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
                         frames=int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
                         width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                         height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0))
    finally:
        capture.release()
    if info.fps <= 0 or info.frames <= 0 or info.width <= 0 or info.height <= 0:
        raise MediaError(f"{path.name}: the video states no frame rate, frame count or size")
    if max_seconds is not None and info.duration > max_seconds:
        raise MediaError(f"{path.name}: {info.duration:.0f} s of video, more than the {max_seconds:.0f} s allowed")
    if max_pixels is not None and info.width * info.height > max_pixels:
        raise MediaError(f"{path.name}: {info.width}x{info.height} frames, more than {max_pixels} pixels allowed")
    return info


def read_frames(path: Path, stride: int = 1, wanted: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, BGR frame) for frames 1, 1 + stride, 1 + 2 * stride, ..., or only the ``wanted`` ones
    (in order, stopping after the last); stops where the file does."""
    import cv2

    if stride < 1:
        raise ValueError("stride must be at least 1")
    targets = itertools.count(1, stride) if wanted is None else iter(sorted(set(wanted)))
    capture = cv2.VideoCapture(str(path))
    try:
        number = 0
        for target in targets:
            while number < target:
                if not capture.grab():  # demuxed; decoded only if it is the target
                    return
                number += 1
            ok, frame = capture.retrieve()
            if not ok:
                return
            yield number, frame
    finally:
        capture.release()
