"""Generated videos of moving shapes with their true boxes on every frame.

Drawn like ``synthetic`` images (filled squares and circles on a light, cluttered
background) so the cached shapes model finds them: a square and a circle that cross
(their boxes overlap for a few frames) and a square that leaves the frame upwards.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = (320, 240)  # width, height
FPS = 25.0
# Container (the file's suffix) -> OpenCV fourcc. mp4v is what the tracking tests read; Chromium
# does not decode MPEG-4 part 2 (MEDIA_ERR_SRC_NOT_SUPPORTED), so the browser checks use VP8 WebM,
# which Chromium plays and OpenCV's FFmpeg both writes and reads frame for frame.
FOURCC = {".mp4": "mp4v", ".webm": "VP80"}
SIDE = 56
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class MovingObject:
    """One object: its class (0 square, 1 circle), colour (BGR) and pixel box per frame (None once gone)."""

    class_id: int
    color: tuple[int, int, int]
    boxes: tuple[Box | None, ...]


@dataclass(frozen=True)
class MovingVideo:
    path: Path
    frames: int
    objects: tuple[MovingObject, ...]


def _path(start: tuple[float, float], end: tuple[float, float], frames: int) -> tuple[Box | None, ...]:
    out: list[Box | None] = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        x, y = start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t
        box = (x, y, x + SIDE, y + SIDE)
        out.append(box if box[3] > 8 else None)  # fully (nearly) out of the frame: gone
    return tuple(out)


def write(path: Path, frames: int = 60, seed: int = 0) -> MovingVideo:
    """A video of ``frames`` frames; the third object has left the frame before half-way.

    The suffix picks the codec (``FOURCC``): ``.mp4`` is MPEG-4 part 2, ``.webm`` VP8 for browsers.
    """
    import cv2

    if path.suffix not in FOURCC:
        raise ValueError(f"{path.name}: write a {' or a '.join(FOURCC)} file")

    width, height = SIZE
    crossing_square = MovingObject(0, (40, 40, 220), _path((10, 70), (width - SIDE - 10, 95), frames))
    crossing_circle = MovingObject(1, (220, 90, 40), _path((width - SIDE - 10, 110), (10, 85), frames))
    leaving = _path((130, 170), (130, 170 - 2 * 170 * 1.5), frames)
    leaving_square = MovingObject(0, (60, 160, 30), tuple(
        None if b is None else (b[0], max(b[1], 0.0), b[2], b[3]) for b in leaving))
    objects = (crossing_square, crossing_circle, leaving_square)

    rng = random.Random(seed)
    background = np.full((height, width, 3), 235, np.uint8)
    for _ in range(20):
        x, y = rng.randrange(width), rng.randrange(height)
        cv2.line(background, (x, y), (x + rng.randrange(-40, 40), y + rng.randrange(-40, 40)),
                 tuple(rng.randrange(120, 200) for _ in range(3)), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC[path.suffix]), FPS, SIZE)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {FOURCC[path.suffix]} into {path.name} (its FFmpeg lacks the encoder)")
    try:
        for index in range(frames):
            frame = background.copy()
            for thing in objects:
                box = thing.boxes[index]
                if box is None:
                    continue
                x1, y1, x2, y2 = (round(v) for v in box)
                if thing.class_id == 0:
                    cv2.rectangle(frame, (x1, y1), (x2, y2), thing.color, -1)
                else:
                    cv2.ellipse(frame, ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360,
                                thing.color, -1)
            writer.write(frame)
    finally:
        writer.release()
    return MovingVideo(path, frames, objects)
