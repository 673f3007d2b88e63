"""Where one task's time goes in our path: decode, EXIF, model stages, result conversion.

Each stage is timed apart on the same images (median ms per image), so a lever can
be judged by the stage it moves. Run in-process by ``benchmark.py`` after the server stops.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _median_ms(action: Callable[[Path], object], paths: list[Path]) -> float:
    times = []
    for path in paths:
        started = time.perf_counter()
        action(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def decode_costs(paths: list[Path], imgsz: int) -> dict[str, float]:
    """Our decoder (PIL, EXIF, RGB->BGR) against OpenCV's and against PIL's JPEG draft mode."""
    import cv2
    from PIL import Image, ImageOps

    from yolo_backend.media.fetcher import open_image, to_bgr

    def pil_plain(path: Path) -> object:
        with Image.open(path) as img:
            return img.convert("RGB")

    def pil_exif(path: Path) -> object:
        with Image.open(path) as img:
            return ImageOps.exif_transpose(img).convert("RGB")

    def pil_draft(path: Path) -> object:
        with Image.open(path) as img:
            img.draft("RGB", (imgsz, imgsz))  # DCT scaling: only pays for images over 2x imgsz
            return ImageOps.exif_transpose(img).convert("RGB")

    return {
        "PIL decode": _median_ms(pil_plain, paths),
        "PIL decode + EXIF": _median_ms(pil_exif, paths),
        "PIL draft + EXIF": _median_ms(pil_draft, paths),
        "ours: open_image + to_bgr": _median_ms(lambda p: to_bgr(open_image(p, 10**9)), paths),
        "cv2.imread (plain way)": _median_ms(lambda p: cv2.imread(str(p)), paths),
    }


def model_costs(paths: list[Path], checkpoint: Path, runtime: str, cache_root: Path, imgsz: int | None,
                device: str, int8: bool = False) -> dict[str, object]:
    """Ultralytics' pre/inference/post split for our detector, and our conversion to Label Studio results."""
    from yolo_backend import kinds
    from yolo_backend.formats import convert
    from yolo_backend.formats.controls import ControlSpec
    from yolo_backend.media.fetcher import open_image, to_bgr
    from yolo_backend.serving.detector import _detections
    from yolo_backend.serving.loader import load_detector
    from yolo_backend.serving.model_store import checkpoint_version

    detector = load_detector(checkpoint, device=device, runtime=runtime, cache_root=cache_root,
                             version=checkpoint_version(checkpoint), imgsz=imgsz, int8=int8, lanes=1)
    target = convert.Target(ControlSpec("label", "image", "rectanglelabels"), labels=dict(detector.names),
                            threshold=0.5)
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": [], "to detections": [],
                                      "to Label Studio results": []}
    boxes = []
    for path in paths:
        pixels = to_bgr(open_image(path, 10**9))
        options = {"half": True} if detector.half else {}
        result = detector.model.predict(pixels, imgsz=detector.imgsz, conf=0.5, iou=detector.iou,
                                        device=detector.device, verbose=False, **options)[0]
        for key in ("preprocess", "inference", "postprocess"):
            stages[key].append(result.speed[key])
        started = time.perf_counter()
        found = _detections(result)
        stages["to detections"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        kinds.detections_to_regions(found, [target], pixels.shape[1], pixels.shape[0])
        stages["to Label Studio results"].append((time.perf_counter() - started) * 1000)
        boxes.append(len(found))
    costs: dict[str, object] = {k: statistics.median(v) for k, v in stages.items()}
    costs["runtime"] = detector.runtime
    costs["boxes per image (median)"] = float(np.median(boxes))
    return costs
