"""One Ultralytics model, loaded once, safe to call from many threads.

Ultralytics models are not thread-safe, so calls are serialised by a lock; image
fetching and decoding happen outside it, in parallel. Which engine runs a checkpoint and
its bulk lanes are ``loader``'s (``load_detector``): this module imports nothing above it.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ModelLoadError
from ..formats.convert import Detection

log = logging.getLogger(__name__)

ORIGINAL_YOLOV5_HINT = (
    "{name} looks like a checkpoint of the original YOLOv5 repository (ultralytics/yolov5), which "
    "Ultralytics 8 cannot load. Retrain it with the `ultralytics` package (`yolo train model=yolov5nu.yaml "
    "data=...`) or fine-tune a YOLOv5u checkpoint such as yolov5nu.pt on the same data, then put the "
    "new .pt file under MODEL_ROOT."
)


def pick_device(requested: str = "auto") -> str:
    """``auto`` prefers cuda, then Apple's mps, then the CPU."""
    if requested and requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda:0"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, as a container's cpuset sets it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def workers_from_env() -> int:
    """WORKERS, the gunicorn processes gunicorn.conf.py starts side by side (1 when unset or malformed)."""
    try:
        return max(1, int(os.environ.get("WORKERS", "1")))
    except ValueError:
        return 1


def inference_threads(requested: int, workers: int, cores: int | None = None) -> int:
    """Threads one worker's model may use: TORCH_THREADS when set, else its share of the cores.

    WORKERS processes each taking every core would run WORKERS x cores busy threads on
    ``cores`` cores, and slow each other down; each gets ``cores // WORKERS``, at least 1.
    """
    if requested > 0:
        return requested
    return max(1, (cores or available_cores()) // max(1, workers))


def set_torch_threads(threads: int, workers: int = 1) -> int:
    """Set torch's intra-op threads for this process; 0 = this worker's share of the cores."""
    import torch

    count = inference_threads(threads, workers)
    torch.set_num_threads(count)
    return count


DEFAULT_IMGSZ = 640  # Ultralytics' own default, for a checkpoint that does not say


def checkpoint_imgsz(model_or_path: object) -> int:
    """The size ``YOLO(path).predict(image)`` uses: the checkpoint's training ``imgsz``, else 640.

    Ultralytics keeps ``imgsz`` from a .pt checkpoint's train args in ``model.overrides``
    (``Model._load`` -> ``_reset_ckpt_args``) and predicts at it unless told otherwise.
    A rectangular ``[h, w]`` size gives its longer side.
    """
    model = load_ultralytics(Path(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    size = (getattr(model, "overrides", None) or {}).get("imgsz")
    if isinstance(size, (list, tuple)) and size:
        size = max(size)
    try:
        return int(size) if size else DEFAULT_IMGSZ
    except (TypeError, ValueError):
        return DEFAULT_IMGSZ


def checkpoint_iou(model: object) -> float:
    """The NMS IoU ``YOLO(path).predict(image)`` uses: the model's own ``iou`` override, else Ultralytics' default.

    ``predict`` merges ``model.overrides`` over ``DEFAULT_CFG`` (``iou: 0.7`` in ``cfg/default.yaml``).
    A .pt checkpoint keeps only ``imgsz``, ``data``, ``task`` and ``single_cls`` of its train args
    (``_reset_ckpt_args``), so in practice this is the package default, read from it, not assumed.
    """
    from ultralytics.cfg import DEFAULT_CFG

    value = (getattr(model, "overrides", None) or {}).get("iou")
    try:
        return float(value) if value is not None else float(DEFAULT_CFG.iou)
    except (TypeError, ValueError):
        return float(DEFAULT_CFG.iou)


def load_ultralytics(path: Path, task: str | None = None):
    """``YOLO(path)``, with a message that says what to do when the file is no Ultralytics 8 checkpoint."""
    from ultralytics import YOLO

    try:
        return YOLO(str(path), task=task)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("models", "utils"):
            raise ModelLoadError(ORIGINAL_YOLOV5_HINT.format(name=path.name)) from None
        raise ModelLoadError(f"Ultralytics could not load {path.name}: {exc}") from None
    except Exception as exc:
        text = str(exc)
        if "yolov5" in text.lower() and ("not forward compatible" in text or "original" in text):
            raise ModelLoadError(ORIGINAL_YOLOV5_HINT.format(name=path.name)) from None
        raise ModelLoadError(f"Ultralytics could not load {path.name}: {type(exc).__name__}: {text[:300]}") from None


class Detector:
    """A loaded checkpoint: ``detect(images)`` returns detections per image, in pixels."""

    def __init__(self, model: object, device: str = "cpu", imgsz: int | None = None, iou: float | None = None,
                 max_det: int = 300, batch_size: int = 0, name: str = "model") -> None:
        self.model = model
        self.task: str = getattr(model, "task", "detect")
        self.device = device
        self.imgsz = int(imgsz) if imgsz else checkpoint_imgsz(model)  # None: the size it was trained at
        self.iou = float(iou) if iou is not None else checkpoint_iou(model)  # None: as YOLO(path).predict does
        self.max_det = max_det
        self.half = device.startswith("cuda")
        self.batch_size = batch_size or (8 if self.half else 1)
        self.name = name
        self.names: dict[int, str] = {int(k): str(v) for k, v in getattr(model, "names", {}).items()}
        self.runtime = "torch"  # or the exported engine serving it, set by runtime selection
        self.source: Path | None = None  # the exported file an engine loaded from (None: torch)
        self.lanes: list[Detector] = []  # single-threaded copies a many-image call runs side by side
        self.lane_count = 1  # how many to make (1: none)
        self.make_lanes: Callable[[Detector], list[Detector]] | None = None  # how (set for an exported engine)
        self._lanes_lock = threading.Lock()
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """The first call pays for lazy initialisation; pay it at load, not in a request."""
        self.detect([np.zeros((64, 64, 3), dtype=np.uint8)], conf=0.99)

    def add_lanes(self) -> list[Detector]:
        """``lane_count`` single-threaded copies of this exported engine, for many-image calls (throughput mode).

        Made once, by ``make_lanes`` (``loader.make_lanes``, set on an exported engine only), on the
        first many-image call: a worker that only ever opens single tasks never holds them.
        """
        with self._lanes_lock:
            if self.lane_count < 2 or self.make_lanes is None or self.lanes:
                return self.lanes
            self.lanes = self.make_lanes(self)
            return self.lanes

    @property
    def engine(self) -> str:
        """The engine family ``limit_threads`` knows: onnx for the fp32 and int8 graphs alike."""
        return "onnx" if self.runtime.startswith("onnx") else self.runtime

    def detect(self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float | None = None, bulk: bool = False
               ) -> list[list[Detection]]:
        """Detections for each BGR image, in that image's pixel coordinates (``iou``: NMS, default IOU).

        ``bulk``: part of a many-task request; with lanes, the images are split among them.
        """
        if bulk and self.lane_count > 1 and len(images) > 1 and self.add_lanes():
            lanes = self.lanes[:len(images)]
            shares = [list(images[i::len(lanes)]) for i in range(len(lanes))]  # interleaved: even work
            # threads for this call only: a retired version leaves none behind (a group is ~8 images, ~0.1 ms to start)
            with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="lane") as pool:
                done = list(pool.map(lambda pair: pair[0].detect(pair[1], conf, iou), zip(lanes, shares)))
            out: list[list[Detection]] = [[] for _ in images]
            for i, found in enumerate(done):
                out[i::len(lanes)] = found
            return out
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = list(images[start:start + self.batch_size])
            options = dict(imgsz=self.imgsz, conf=conf, iou=self.iou if iou is None else iou, max_det=self.max_det,
                           device=self.device,
                           verbose=False)
            if self.half:
                options["half"] = True
            with self._lock:
                results = self.model.predict(source=batch, **options)  # type: ignore[attr-defined]
            out.extend(_detections(r) for r in results)
        return out


def _detections(result: object) -> list[Detection]:
    """Ultralytics ``Results`` -> detections: boxes (with mask outlines or keypoints), oriented boxes, or classes."""
    oriented = getattr(result, "obb", None)
    if oriented is not None:
        return _oriented(oriented)
    probs = getattr(result, "probs", None)
    if probs is not None:
        return _classes(probs, result.orig_shape)  # type: ignore[attr-defined]
    boxes = result.boxes  # type: ignore[attr-defined]
    if boxes is None or len(boxes) == 0:
        return []
    xyxy = boxes.xyxy.cpu().numpy().tolist()
    scores = boxes.conf.cpu().numpy().tolist()
    classes = boxes.cls.cpu().numpy().astype(int).tolist()
    masks = getattr(result, "masks", None)
    outlines = masks.xy if masks is not None else [None] * len(xyxy)
    points = getattr(result, "keypoints", None)
    poses = _keypoints(points) if points is not None else [None] * len(xyxy)
    found = []
    for box, score, cls, outline, pose in zip(xyxy, scores, classes, outlines, poses):
        polygon = tuple((float(x), float(y)) for x, y in outline) if outline is not None and len(outline) else None
        found.append(Detection(int(cls), float(score), (box[0], box[1], box[2], box[3]), polygon, keypoints=pose))
    return found


def _keypoints(points: object) -> list[tuple[tuple[float, float, float], ...]]:
    """``Results.keypoints``: (x, y, confidence) per point of each instance; confidence 1 when the model has none."""
    xy = points.xy.cpu().numpy()  # type: ignore[attr-defined]
    conf = points.conf  # type: ignore[attr-defined]
    conf = conf.cpu().numpy() if conf is not None else np.ones(xy.shape[:2])
    return [tuple((float(x), float(y), float(c)) for (x, y), c in zip(inst, cs)) for inst, cs in zip(xy, conf)]


def _classes(probs: object, shape: tuple[int, int]) -> list[Detection]:
    """``Results.probs``: one whole-image detection per class, best first (``kinds.classes`` picks from them)."""
    values = probs.data.cpu().numpy()  # type: ignore[attr-defined]
    height, width = shape[:2]
    order = np.argsort(-values, kind="stable")
    kept = [cls for cls in order if values[cls] >= 1e-3] or order[:1]  # of 1,000 ImageNet classes, the plausible
    return [Detection(int(cls), float(values[cls]), (0.0, 0.0, float(width), float(height))) for cls in kept]


def _oriented(obb: object) -> list[Detection]:
    """``Results.obb``: 4 corners per box (``xyxyxyxy``), its axis-aligned bounds as the box."""
    if len(obb) == 0:  # type: ignore[arg-type]
        return []
    corners = obb.xyxyxyxy.cpu().numpy().tolist()  # type: ignore[attr-defined]
    scores = obb.conf.cpu().numpy().tolist()  # type: ignore[attr-defined]
    classes = obb.cls.cpu().numpy().astype(int).tolist()  # type: ignore[attr-defined]
    found = []
    for points, score, cls in zip(corners, scores, classes):
        xs, ys = [float(x) for x, _ in points], [float(y) for _, y in points]
        found.append(Detection(int(cls), float(score), (min(xs), min(ys), max(xs), max(ys)),
                               corners=tuple(zip(xs, ys))))
    return found
