"""Frames per second of video tracking on this machine: detector + ByteTrack, 640 px, with and without a stride.

    .venv/bin/python scripts/bench_video.py [--model PATH] [--frames 250] [--imgsz 640]

Without ``--model`` it uses the cached shapes model (trained on first use). The video is a
generated one (``tests.support.moving_shapes``) scaled to 640x480. Prints one line per
stride: frames of video covered per second of wall time, and frames run through the model.
The shapes model (trained at 160 px) finds nothing at 640 px, so there the figure is the
detector's cost with an idle tracker; ``--imgsz 320`` tracks the shapes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model")
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--strides", default="1,2,5")
    args = parser.parse_args()

    import cv2
    from ultralytics import YOLO

    from tests.support import moving_shapes
    from tests.support.trained_model import trained_shapes_model
    from yolo_backend.formats.controls import ControlSpec
    from yolo_backend.formats.convert import Target
    from yolo_backend.serving.detector import Detector
    from yolo_backend.video import frames
    from yolo_backend.video.predict import TRACK_CONF, TrackOptions, video_regions

    detector = Detector(YOLO(args.model or str(trained_shapes_model())), imgsz=args.imgsz, name="bench")
    with tempfile.TemporaryDirectory() as work:
        small = moving_shapes.write(Path(work) / "small.mp4", frames=args.frames)
        big = Path(work) / "big.mp4"
        reader, writer = cv2.VideoCapture(str(small.path)), None
        while True:
            ok, frame = reader.read()
            if not ok:
                break
            frame = cv2.resize(frame, (640, 480))
            writer = writer or cv2.VideoWriter(str(big), cv2.VideoWriter_fourcc(*"mp4v"), moving_shapes.FPS, (640, 480))
            writer.write(frame)
        reader.release()
        writer.release()
        info = frames.probe(big)
        detector.detect([next(frames.read_frames(big))[1]])  # warm-up
        print(f"video {info.width}x{info.height}, {info.frames} frames at {info.fps:g} fps; model at {args.imgsz} px; "
              f"{os.cpu_count()} CPUs")
        target = Target(ControlSpec("box", "video", "videorectangle", media="video"), labels=dict(detector.names),
                        threshold=0.25)
        for stride in (int(s) for s in args.strides.split(",")):  # the path /predict takes for a video task
            options = TrackOptions("bytetrack", TRACK_CONF, None, stride, 0.9)
            started = time.perf_counter()
            regions = video_regions(big, info, target, detector, options)
            seconds = time.perf_counter() - started
            kept = sum(len(r["value"]["sequence"]) for r in regions)
            print(f"stride {stride}: {info.frames / seconds:.1f} video frames/s ({-(-info.frames // stride)} through "
                  f"the model, {seconds:.1f} s); {len(regions)} tracks, {kept} keyframes")


if __name__ == "__main__":
    main()
