"""One Ultralytics model, loaded once, safe to call from many threads.

Ultralytics models are not thread-safe, so calls are serialised by a lock; image
fetching and decoding happen outside it, in parallel.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelLoadError
from ..formats.convert import Detection
from ..kinds import SERVING_TASKS

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
        self._lanes_lock = threading.Lock()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, device: str = "auto", imgsz: int | None = None, torch_threads: int = 0,
             runtime: str = "torch", cache_root: Path | None = None, version: str = "", prepare: bool = True,
             workers: int | None = None, int8: bool = False, lanes: int = 1, **options: object) -> Detector:
        """Load ``path`` at ``imgsz`` (None: the size it was trained at, as Ultralytics predicts).

        ``iou`` in ``options`` (None or absent: the checkpoint's own, ``checkpoint_iou``) is NMS's, and an
        exported engine or bulk lane of it uses the same value: the .pt's, which the export does not keep.

        With ``cache_root`` an exported engine may serve it (see runtime.py): ``prepare`` exports and
        checks it first (the base model, loading in the background); otherwise only an export that
        already passed its check is used (trained versions, checked by the training job).
        ``torch_threads`` 0 gives torch and the engine this worker's share of the cores among
        ``workers`` (default: WORKERS from the environment). ``int8``: serve the int8 copy of the
        ONNX export when its gate passed (int8.py). ``lanes`` > 1: as many single-threaded copies
        of an exported engine for many-image calls (``detect(..., bulk=True)``); 0: one per thread.
        """
        started = time.perf_counter()
        model = load_ultralytics(path)
        threads = inference_threads(torch_threads, workers_from_env() if workers is None else workers)
        task = getattr(model, "task", "detect")
        if task not in SERVING_TASKS:  # the tasks some registered kind can be served from
            raise ModelLoadError(f"{path.name} is a {task!r} model; this backend serves {', '.join(SERVING_TASKS)} "
                                 "models")
        detector = cls(model, device=pick_device(device), imgsz=imgsz, name=path.name,
                       **options)  # type: ignore[arg-type]
        if runtime != "torch" and cache_root is not None:
            detector = _faster(detector, path, runtime, cache_root, prepare, threads, int8)
            detector.lane_count = threads if lanes == 0 else lanes  # made on the first many-image call
        detector.warm_up()
        # last: Ultralytics sets torch's threads on import and again on each model's first predict
        # (select_device: cores - 1, at most 8), whatever was set before
        set_torch_threads(threads)
        lanes_text = f", {detector.lane_count} bulk lanes" if detector.lane_count > 1 and detector.source else ""
        log.info("loaded %s%s (%s, %d classes) on %s with %s at %d px, %d threads%s, in %.1f s", path.name,
                 f" as {version}" if version else "", task, len(detector.names), detector.device, detector.runtime,
                 detector.imgsz, threads, lanes_text, time.perf_counter() - started)
        return detector

    def warm_up(self) -> None:
        """The first call pays for lazy initialisation; pay it at load, not in a request."""
        self.detect([np.zeros((64, 64, 3), dtype=np.uint8)], conf=0.99)

    def add_lanes(self) -> list[Detector]:
        """``lane_count`` single-threaded copies of this exported engine, for many-image calls (throughput mode).

        One session with every thread is fastest for one image (a task opening); for many, the
        same cores give more images per second as sessions side by side, one thread each: no
        thread waits on another inside an operator. Only for an exported engine on the CPU
        (torch's threads are one pool per process); the copies share the file, not memory.
        Made once, on the first many-image call (about a second): a worker that only ever opens
        single tasks never holds them.
        """
        from . import runtime

        source = self.source
        with self._lanes_lock:
            if self.lane_count < 2 or source is None or self.lanes:
                return self.lanes
            self._make_lanes(source, runtime)
            return self.lanes

    def _make_lanes(self, source: Path, runtime: object) -> None:
        made: list[Detector] = []
        try:
            for _ in range(self.lane_count):
                lane = Detector(load_ultralytics(source, self.task), device=self.device, imgsz=self.imgsz, iou=self.iou,
                                max_det=self.max_det, batch_size=self.batch_size, name=self.name)
                lane.runtime = self.runtime
                lane.warm_up()
                runtime.limit_threads(lane.model, self.engine, source, 1)  # type: ignore[attr-defined]
                lane.warm_up()
                made.append(lane)
        except Exception as exc:  # the single session keeps serving everything
            log.warning("%s: no bulk lanes (%s: %s)", self.name, type(exc).__name__, str(exc)[:200])
            self.lane_count = 1
            return
        self.lanes = made

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


def _faster(detector: Detector, path: Path, requested: str, cache_root: Path, prepare: bool,
            threads: int, int8: bool = False) -> Detector:
    """The same checkpoint on an exported engine that answered as torch does; else ``detector`` (torch).

    With ``int8``, the int8 copy of the ONNX export when its holdout gate passed (int8.py).
    """
    from . import int8 as quantized
    from . import runtime

    # an export already checked serves at once; otherwise (prepare) it is made and checked in a child
    # process, so that the worker never runs torch's inference for a check
    choice: runtime.Choice = runtime.prepared(path, requested, detector.device, detector.imgsz, cache_root,
                                              quiet=prepare)
    if prepare and choice.runtime == "torch":
        choice = runtime.prepare_apart(path, requested, detector.device, detector.imgsz, cache_root)
    if choice.runtime == "torch":
        return detector  # prepare()/prepared() logged why
    label = choice.runtime
    if int8 and choice.runtime == "onnx":
        graph = quantized.passed(cache_root, runtime.content_key(path), detector.imgsz)
        if graph is not None:
            choice, label = runtime.Choice("onnx", graph), quantized.RUNTIME
        else:
            log.info("%s: no int8 copy passed its gate at %d px; fp32 serves", path.name, detector.imgsz)
    try:
        fast = Detector(load_ultralytics(choice.path, detector.task), device=detector.device, imgsz=detector.imgsz,
                        iou=detector.iou, max_det=detector.max_det, batch_size=detector.batch_size, name=path.name)
        fast.runtime = label
        fast.source = choice.path
        fast.warm_up()  # a graph that loads lazily fails here, not in a request
        if runtime.limit_threads(fast.model, choice.runtime, choice.path, threads):
            fast.warm_up()  # the rebuilt session's first call, too
    except Exception as exc:  # a broken cached export must not stop the service
        log.warning("%s: the checked %s export failed to load (%s: %s); serving torch", path.name, choice.runtime,
                    type(exc).__name__, str(exc)[:300])
        return detector
    if fast.names != detector.names:
        log.warning("%s: the %s export lost the class names; serving torch", path.name, choice.runtime)
        return detector
    return fast


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
