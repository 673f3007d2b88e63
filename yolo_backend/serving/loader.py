"""A checkpoint loaded for serving: torch, or the exported engine ``runtime`` checked for it, with bulk lanes.

``Detector`` is one loaded model and knows nothing of engines; this module picks which one
serves a checkpoint (``_faster``: an export that answered as torch does, its int8 copy when
that passed its gate) and how a many-image call runs on it (``make_lanes``), so the import
order stays detector <- runtime <- loader.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..errors import ModelLoadError
from ..kinds import SERVING_TASKS
from . import int8 as quantized
from . import runtime
from .detector import Detector, inference_threads, load_ultralytics, pick_device, set_torch_threads, workers_from_env
from .engine_threads import limit_threads

log = logging.getLogger(__name__)


def load_detector(path: Path, device: str = "auto", imgsz: int | None = None, torch_threads: int = 0,
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
    detector = Detector(model, device=pick_device(device), imgsz=imgsz, name=path.name,
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


def _faster(detector: Detector, path: Path, requested: str, cache_root: Path, prepare: bool,
            threads: int, int8: bool = False) -> Detector:
    """The same checkpoint on an exported engine that answered as torch does; else ``detector`` (torch).

    With ``int8``, the int8 copy of the ONNX export when its holdout gate passed (int8.py).
    """
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
        fast.make_lanes = make_lanes
        fast.warm_up()  # a graph that loads lazily fails here, not in a request
        if limit_threads(fast.model, choice.runtime, choice.path, threads):
            fast.warm_up()  # the rebuilt session's first call, too
    except Exception as exc:  # a broken cached export must not stop the service
        log.warning("%s: the checked %s export failed to load (%s: %s); serving torch", path.name, choice.runtime,
                    type(exc).__name__, str(exc)[:300])
        return detector
    if fast.names != detector.names:
        log.warning("%s: the %s export lost the class names; serving torch", path.name, choice.runtime)
        return detector
    return fast


def make_lanes(detector: Detector) -> list[Detector]:
    """``lane_count`` single-threaded copies of an exported engine, for many-image calls (throughput mode).

    One session with every thread is fastest for one image (a task opening); for many, the
    same cores give more images per second as sessions side by side, one thread each: no
    thread waits on another inside an operator. Only for an exported engine on the CPU
    (torch's threads are one pool per process); the copies share the file, not memory.
    About a second; any failure leaves none (``lane_count`` 1): the single session serves everything.
    """
    source = detector.source
    if source is None:
        return []
    made: list[Detector] = []
    try:
        for _ in range(detector.lane_count):
            lane = Detector(load_ultralytics(source, detector.task), device=detector.device, imgsz=detector.imgsz,
                            iou=detector.iou, max_det=detector.max_det, batch_size=detector.batch_size,
                            name=detector.name)
            lane.runtime = detector.runtime
            lane.warm_up()
            limit_threads(lane.model, detector.engine, source, 1)
            lane.warm_up()
            made.append(lane)
    except Exception as exc:  # the single session keeps serving everything
        log.warning("%s: no bulk lanes (%s: %s)", detector.name, type(exc).__name__, str(exc)[:200])
        detector.lane_count = 1
        return []
    return made
