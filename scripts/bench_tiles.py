"""Tiles for small objects: recall and time of the tiled prediction against the whole-image one.

    .venv/bin/python scripts/bench_tiles.py                    # 4000 x 3000, objects 16-24 px, 3 seeds
    .venv/bin/python scripts/bench_tiles.py --size 2000x1500 --objects 16-32 --seeds 2

Generated images (``tests/support/synthetic.py``: squares and circles on a cluttered background)
with many small objects; the shapes model (``tests/support/trained_model.py``, trained at 160 px)
predicts each image whole (shrunk to its 160 px input, as ``YOLO(path).predict`` does) and in
tiles of 160 px (``serving/tiles.py``, a fifth overlapping, merged). Recall: objects with a box of
IoU >= 0.5 and the right class; also the boxes that match nothing (false) and objects found twice.
The model is a test model: what transfers is the ratio, not the absolute recall.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tests.support.synthetic import draw_sample  # noqa: E402
from tests.support.trained_model import RECIPE, trained_shapes_model  # noqa: E402
from yolo_backend.formats.overlap import box_ios, box_iou  # noqa: E402
from yolo_backend.serving import tiles  # noqa: E402
from yolo_backend.serving.detector import Detector, load_ultralytics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--objects", default="16-24", help="object side range in px")
    parser.add_argument("--count", type=int, default=150, help="objects per image (at most)")
    parser.add_argument("--tile", type=int, default=160)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    low, high = (int(v) for v in args.objects.split("-"))
    detector = Detector(load_ultralytics(trained_shapes_model()), imgsz=RECIPE["imgsz"])
    detector.warm_up()
    rows = {"whole": [], "tiled": []}
    for seed in range(1, args.seeds + 1):
        img, shapes = draw_sample(seed, size=(width, height), max_shapes=args.count, min_side=low, max_side=high)
        pixels = np.asarray(img)[:, :, ::-1].copy()
        truth = np.array([s.box for s in shapes], float)
        classes = np.array([s.class_id for s in shapes])
        for name, size in (("whole", 0), ("tiled", args.tile)):
            started = time.perf_counter()
            [found] = tiles.detect(detector, [pixels], size, conf=0.25)
            seconds = time.perf_counter() - started
            boxes = np.array([d.box for d in found], float).reshape(-1, 4)
            same = classes[:, None] == np.array([d.class_id for d in found])[None, :]
            iou = box_iou(truth, boxes) * same if len(boxes) else np.zeros((len(truth), 0))
            hit = int((iou.max(axis=1) >= 0.5).sum()) if len(boxes) else 0
            false = int((iou.max(axis=0) < 0.5).sum()) if len(boxes) else 0
            twice = int(((box_ios(truth, boxes) >= 0.5).sum(axis=1) > 1).sum()) if len(boxes) else 0
            rows[name].append({"objects": len(shapes), "recall": hit / len(shapes), "false": false, "twice": twice,
                               "seconds": seconds, "tiles": len(tiles.windows(width, height, size)) if size else 1})
            print(f"seed {seed} {name}: {hit} of {len(shapes)} objects, {false} false boxes, {twice} found twice, "
                  f"{seconds:.2f} s", flush=True)
    print(f"\n{width} x {height}, objects {low}-{high} px, {args.seeds} seeds, model input {RECIPE['imgsz']} px, "
          f"{os.cpu_count()} CPUs")
    print("| | recall (mean, min-max) | false boxes per image | found twice | seconds per image | inferences |")
    print("|---|---|---|---|---|---|")
    for name, found in rows.items():
        recall = [r["recall"] for r in found]
        inferences = found[0]["tiles"] + (1 if name == "tiled" else 0)
        print(f"| {name} | {statistics.mean(recall):.3f} ({min(recall):.3f}-{max(recall):.3f}) | "
              f"{statistics.mean(r['false'] for r in found):.1f} | {sum(r['twice'] for r in found)} | "
              f"{statistics.mean(r['seconds'] for r in found):.2f} | {inferences} |")


if __name__ == "__main__":
    main()
