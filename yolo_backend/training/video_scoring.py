"""A video holdout scored as it is served: tracks, thinned to keyframes, drawn by Label Studio's interpolation.

Serving never shows a frame's own detections. It tracks the video (the control's stride,
tracker and confidence), keeps a track when its best score passes the threshold, and writes
the track's keyframes, between which Label Studio interpolates (``video/predict.py``,
``video/keyframes.py``). Scoring the holdout frame by frame judges what no annotator sees:
a kept track shows its weak frames too, a lost track shows nothing, and thinning moves boxes.
So each annotated holdout frame is scored with the boxes the served tracks draw on it, each
carrying its track's best score, the score the threshold is applied to.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..formats.controls import ControlSpec
from ..kinds import Kind
from ..video import annotations, keyframes, predict
from ..video.frames import VideoInfo, probe
from . import scoring
from .examples import Example
from .holdout import holdout_detector, judged, label_indices, truths

Drawn = tuple[int, float, list[dict]]  # label index, the track's best score, its served keyframes


def predict_tracks(checkpoint: Path, examples: list[Example], spec: ControlSpec, settings: Settings, kind: Kind,
                   engine: Path | None = None) -> list[scoring.Image]:
    """One scored image per holdout frame (in ``examples`` order): the served tracks' boxes on it vs its rows."""
    detector = holdout_detector(checkpoint, settings, engine)
    mapping = label_indices(kind, spec, detector.names)
    options = predict.options_for(spec, settings)
    out: dict[int, scoring.Image] = {}
    for video in dict.fromkeys(e.video for e in examples):
        if video is None:
            raise ValueError("a video holdout frame without its video file: the dataset was not built from videos")
        info = probe(video)
        tracks = served_tracks(video, info, detector, options, mapping)
        for index, example in enumerate(examples):
            if example.video == video:
                out[index] = judged(kind, drawn_on(tracks, info, example.frame or 1),
                                    truths(example, info.width, info.height, kind))
    return [out[index] for index in range(len(examples))]


def served_tracks(video: Path, info: VideoInfo, detector: object, options: predict.TrackOptions,
                  mapping: dict[int, int]) -> list[Drawn]:
    """Every track of a label, as its region's keyframes; thresholds are left to the scoring."""
    out = []
    for points in predict.track_video(video, info, detector, options).values():
        label = mapping.get(predict.track_class(points))
        if label is not None:
            out.append((label, max(p.score for p in points),
                        keyframes.sequence(points, info, options.stride, options.keyframe_iou)))
    return out


def drawn_on(tracks: list[Drawn], info: VideoInfo, frame: int) -> list[scoring.Found]:
    """The boxes Label Studio draws on ``frame`` for the served tracks (interpolated between keyframes)."""
    found = []
    for label, best, sequence in tracks:
        box = annotations.frame_boxes(sequence, info, frame)
        if box is not None:
            found.append(scoring.Found(label, best, tuple(float(v) for v in box)))
    return found
