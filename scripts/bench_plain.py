"""The plain way, as a straightforward backend does it: ``YOLO(path).predict(image path)`` per task.

Run by ``benchmark.py`` in its own process, so its memory and thread settings are its own.
Prints one JSON object: per-call latencies, Ultralytics' own stage split, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("YOLO_OFFLINE", "1")


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM: the most resident memory the process ever had."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--tasks", type=int, required=True, help="calls to make, cycling over the images")
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()

    import torch
    from ultralytics import YOLO

    model = YOLO(args.model)
    options = dict(imgsz=args.imgsz, device=args.device, verbose=False)
    if args.device.startswith("cuda"):
        options["half"] = True  # the plain way on a GPU gets half precision too, for a fair ratio
    model.predict(args.images[0], **options)  # warm-up, as a server would have done before the first task
    latencies, stages = [], []
    started = time.perf_counter()
    for i in range(args.tasks):
        t = time.perf_counter()
        result = model.predict(args.images[i % len(args.images)], **options)[0]
        latencies.append(time.perf_counter() - t)
        stages.append(result.speed)
    total = time.perf_counter() - started
    split = {k: statistics.median(s[k] for s in stages) for k in ("preprocess", "inference", "postprocess")}
    print(json.dumps({"latencies": latencies, "total_s": total, "stages_ms": split,
                      "peak_rss_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
