"""Smart clicks and boxes: the object a point or box drawn with a smart tool points at, as regions of the config.

The data path, top to bottom: ``context`` -> one ``Prompt`` -> the task's image (``media``) ->
one object (``Segmenter`` when ASSIST_MODEL is set, else the served YOLO checkpoint's detection
the prompt means, ``choose``) -> one region in each control that takes it (``outputs``), labelled
with the label the annotator chose.

Which controls answer (on the prompt's image): a point gets a ``<BrushLabels>`` mask and a
``<PolygonLabels>`` outline where the config has them, else a ``<RectangleLabels>`` box; a box
gets the tight box in its own ``<RectangleLabels>`` control, and the mask and outline controls
too. A control answers only when it has the chosen label (a bare ``<KeyPoint>`` tool, without
one: the control's first label).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import BackendError, BadRequest
from ..formats import convert, label_config
from ..formats.controls import ControlSpec, map_classes
from ..formats.convert import Detection, Target
from ..kinds import detection_to_region
from ..logs import bounded_put
from ..serving import tiles, weights
from ..serving.backend import project_id
from ..serving.detector import pick_device
from ..serving.model_store import checkpoint_version, safe_model_path
from . import choose
from .context import Prompt, parse
from .segmenter import Segmenter

log = logging.getLogger(__name__)

SHAPES = ("brushlabels", "polygonlabels")  # controls a point is answered in
BOXES = ("rectanglelabels",)
CACHED_DETECTIONS = 8  # images whose YOLO detections are kept: a second click on one costs no inference


class Assistant:
    """Answers smart requests for one backend (its media, its served models); one per process."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.settings: Settings = backend.settings
        self.path: Path | None = (safe_model_path(self.settings.model_root_path, self.settings.assist_model)
                                  if self.settings.assist_model else None)
        self.state = "off" if self.path is None else "not loaded"
        self.message = "no ASSIST_MODEL: the served YOLO checkpoint answers smart clicks and boxes"
        self.version = "assist"  # the assist model's version string, once loaded
        self._segmenter: Segmenter | None = None
        self._load_lock = threading.Lock()
        self._detections: OrderedDict[Hashable, list[Detection]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- the assist model -----------------------------------------------------------------------
    def start(self) -> None:
        """Fetch (published names, pinned by ASSIST_SHA256) and load ASSIST_MODEL in the background."""
        if self.path is not None:
            threading.Thread(target=self._load, name="load-assist-model", daemon=True).start()

    def _load(self, wait: bool = True) -> Segmenter | None:
        """The assist model, loaded (fetched first) once; ``wait=False``: None while another thread loads it."""
        if self.path is None or self._segmenter is not None:
            return self._segmenter
        if not self._load_lock.acquire(blocking=wait):
            return None  # downloading or loading: the YOLO fallback answers meanwhile
        try:
            if self._segmenter is not None or self.state == "error":
                return self._segmenter
            try:
                if not self.path.is_file() and weights.can_fetch(self.settings, self.path):
                    self.state, self.message = "downloading", f"downloading {self.path.name}"
                    weights.fetch(self.settings, self.path, "ASSIST_SHA256")
                if not self.path.is_file():
                    raise BackendError(f"no ASSIST_MODEL at {self.path}: put {self.path.name} there (from "
                                       f"{self.settings.weights_url.rstrip('/')}/{self.path.name}), or unset "
                                       "ASSIST_MODEL")
                self._segmenter = Segmenter(self.path, pick_device(self.settings.device))
                self.version = f"assist-{checkpoint_version(self.path)}"
                self.state, self.message = "ready", f"{self.path.name} answers smart clicks and boxes"
            except (BackendError, weights.DownloadFailed) as exc:
                self.state, self.message = "error", f"{exc}; the served YOLO checkpoint answers smart requests"
                log.error("assist model: %s", self.message)
            return self._segmenter
        finally:
            self._load_lock.release()

    def status(self) -> dict[str, Any]:
        """For /health: which model answers smart requests, or why the assist model does not."""
        return {"model": self.path.name if self.path else None, "state": self.state, "message": self.message}

    # -- a smart request -------------------------------------------------------------------------
    def answer(self, tasks: list[Any], context: Any, project: Any, config: str) -> list[dict[str, Any]] | None:
        """The prediction for a smart request; None when ``context`` holds no point or box (pre-label as usual)."""
        prompt = parse(context)
        if prompt is None:
            return None
        if len(tasks) != 1 or not isinstance(tasks[0], dict) or not isinstance(tasks[0].get("data"), dict):
            raise BadRequest("a smart request carries one task, an object with a 'data' object")
        task = tasks[0]
        specs = label_config.parse(config)
        outputs = [(spec, label) for spec in answering(specs, prompt) if (label := label_for(spec, prompt.label))]
        if not outputs:
            log.info("smart %s on %r: no control takes label %r", prompt.kind, prompt.to_name, prompt.label)
            return [convert.task_prediction([], self.backend.current_version(project_id(project)) or "assist")]
        first = outputs[0][0]
        url = task["data"].get(first.data_key)
        started = time.perf_counter()
        image = self.backend.media.load(url, task.get("id"))
        try:
            key = (task.get("id"), url, image.width, image.height)
            found, version = self._find(prompt, image.pixels, key, project, first)
        finally:
            image.release()
        regions = [] if found is None else [
            detection_to_region(replace(found, class_id=0), Target(spec, labels={0: label}, threshold=0.0,
                                                                   task="segment" if found.polygon else "detect"),
                                image.width, image.height, index)
            for index, (spec, label) in enumerate(outputs)]
        log.info("smart %s on task %s: %s in %.0f ms (%s)", prompt.kind, task.get("id"),
                 "found" if found else "nothing", (time.perf_counter() - started) * 1000, version)
        return [convert.task_prediction(regions, version, found.score if found else 0.0)]

    def _find(self, prompt: Prompt, pixels: Any, key: Hashable, project: Any, spec: ControlSpec
              ) -> tuple[Detection | None, str]:
        """The object and the version string of what found it: the assist model, else the control's served YOLO."""
        height, width = pixels.shape[:2]
        points, box = prompt.pixel_points(width, height), prompt.pixel_box(width, height)
        segmenter = self._load(wait=False)
        if segmenter is not None:
            return segmenter.segment(key, pixels, points, box), self.version
        served = self.backend.serve_control(project_id(project), spec)  # trained, prompted or base, as /predict
        detector = served.detector
        if detector is None or detector.task == "classify":
            return None, served.version
        conf = min(self.settings.assist_score_threshold, spec.threshold or 1.0)
        if box is not None:  # the image cut around the box, at the model's input size
            x0, y0, x1, y1 = choose.crop(box, width, height, detector.imgsz)
            found = [tiles.shift(d, x0, y0) for d in detector.detect([pixels[y0:y1, x0:x1]], conf=conf)[0]]
            found = [d for d in found if all(choose.holds(d, x, y) == keep for x, y, keep in points)]
            return choose.in_box(found, box), served.version
        detections = self._detect(detector, (served.version, *key), pixels, spec, conf)
        return choose.at_points(detections, points), served.version

    def _detect(self, detector: Any, key: Hashable, pixels: Any, spec: ControlSpec, conf: float) -> list[Detection]:
        """The whole image's detections, as a task open predicts them (tiles included), kept for the next click."""
        with self._cache_lock:
            if key in self._detections:
                self._detections.move_to_end(key)
                return self._detections[key]
        found = tiles.detect(detector, [pixels], tiles.tile_size([spec], self.settings.tile), conf=conf)[0]
        with self._cache_lock:
            bounded_put(self._detections, key, found, CACHED_DETECTIONS)
        return found


def answering(specs: tuple[ControlSpec, ...], prompt: Prompt) -> list[ControlSpec]:
    """The controls that take the object a prompt points at (module docstring), in config order."""
    on_image = [s for s in specs if s.to_name == prompt.to_name and s.media == "image"]
    shapes = [s for s in on_image if s.kind in SHAPES]
    if prompt.kind == "box":
        own = [s for s in on_image if s.from_name == prompt.from_name and s.kind in BOXES]
        return own + shapes
    return shapes or [s for s in on_image if s.kind in BOXES]


def label_for(spec: ControlSpec, label: str | None) -> str | None:
    """The label a control gives the object: the annotator's, matched to the control's labels as a model's class
    name is (``controls.map_classes``: predicted_values, exact, then ignoring case); a bare tool's: the first."""
    if label is None:
        return spec.labels[0] if spec.labels else None
    return map_classes(spec, {0: label}).get(0)
