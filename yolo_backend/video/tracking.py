"""Detections on successive frames -> tracks: which box on frame n is which box on frame n + 1.

A tracker instance per video, never Ultralytics' ``model.track``: that keeps its trackers on
the model's predictor, which the service shares between requests. The tracker kinds and
their settings are Ultralytics' own (``bytetrack.yaml``, ``botsort.yaml``, or a yaml of
the same fields); BoT-SORT runs without ReID and without camera-motion compensation here
unless its yaml asks, as the detector's features are not handed to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..formats.convert import Detection

TRACKERS = ("bytetrack", "botsort")


@dataclass(frozen=True)
class TrackPoint:
    """One tracked object on one frame: pixels x1 y1 x2 y2 of the frame, its score and class."""

    frame: int
    box: tuple[float, float, float, float]
    score: float
    class_id: int


def tracker_config(tracker: str | Path) -> Any:
    """Ultralytics' settings namespace for ``bytetrack``/``botsort`` (their shipped yaml) or a yaml path."""
    from ultralytics.utils import YAML, IterableSimpleNamespace
    from ultralytics.utils.checks import check_yaml

    name = str(tracker)
    if name in TRACKERS:
        name = f"{name}.yaml"
    config = IterableSimpleNamespace(**YAML.load(check_yaml(name)))
    if config.tracker_type not in TRACKERS:
        raise ValueError(f"tracker_type {config.tracker_type!r}: one of {', '.join(TRACKERS)}")
    if getattr(config, "with_reid", False):
        config.with_reid = False  # needs the detector's features or a second model: not served here
    config.device = "cpu"
    return config


def new_tracker(tracker: str | Path) -> Any:
    """A fresh tracker of that kind; state lives in it, so one per video."""
    from ultralytics.trackers.track import TRACKER_MAP

    config = tracker_config(tracker)
    return TRACKER_MAP[config.tracker_type](args=config)


def track(frames: Iterable[tuple[int, np.ndarray]], detect: Callable[[list[np.ndarray]], list[list[Detection]]],
          tracker: str | Path = "bytetrack", batch: int = 8) -> dict[int, list[TrackPoint]]:
    """Track id -> its points in frame order, from ``detect`` run on ``frames`` a batch at a time.

    ``detect`` is the served detector's call at the serving threshold; frames are only held
    a batch at a time.
    """
    state = new_tracker(tracker)
    tracks: dict[int, list[TrackPoint]] = {}
    chunk: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        for (number, frame), found in zip(chunk, detect([image for _, image in chunk])):
            height, width = frame.shape[:2]
            for row in state.update(_as_boxes(found, (height, width)), frame):
                x1, y1, x2, y2, track_id, score, class_id = (float(v) for v in row[:7])
                box = (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width),
                       min(max(y2, 0.0), height))  # the filtered box may reach past the frame; Results clips it
                tracks.setdefault(int(track_id), []).append(TrackPoint(number, box, score, int(class_id)))
        chunk.clear()

    for item in frames:
        chunk.append(item)
        if len(chunk) == batch:
            flush()
    if chunk:
        flush()
    return tracks


def _as_boxes(found: Sequence[Detection], shape: tuple[int, int]) -> Any:
    """Detections as the numpy-backed Ultralytics ``Boxes`` a tracker reads (xywh, conf, cls, indexing)."""
    from ultralytics.engine.results import Boxes

    rows = np.array([[*d.box, d.score, d.class_id] for d in found], dtype=np.float32).reshape(-1, 6)
    return Boxes(rows, shape)
