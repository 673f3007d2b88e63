"""Loads each checkpoint once per process and knows which one serves a project.

The base model loads in a background thread at start, so ``/health`` and ``/setup``
answer at once while it loads. Checkpoints are only ever read from ``MODEL_ROOT``
(base and per-control ``model_path``) or from this service's own ``MODEL_DIR``
(trained versions): a request can never name a file elsewhere.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..config import Settings
from ..core.checkpoints import VersionCache, checkpoint_version, safe_model_path
from ..errors import BackendError, ModelNotReady, ModelPathRefused
from . import weights
from .detector import Detector
from .loader import load_detector

__all__ = ["UNTRAINED", "ModelState", "ModelStore", "Plan", "ServedModel", "checkpoint_version", "safe_model_path"]

log = logging.getLogger(__name__)

UNTRAINED = "untrained"


class ModelState(str, enum.Enum):
    DOWNLOADING = "downloading"
    LOADING = "loading"
    READY = "ready"
    NO_WEIGHTS = "no_weights"
    ERROR = "error"


@dataclass(frozen=True)
class ServedModel:
    """What answers a prediction: a detector (None when there are no weights), its version, its thresholds."""

    detector: Detector | None
    version: str
    thresholds: dict[str, float] = field(default_factory=dict)  # per label, chosen on a trained version's holdout


@dataclass(frozen=True)
class Plan:
    """Which checkpoint serves a control, known without loading anything (what /setup needs)."""

    path: Path | None  # None: no weights at all
    version: str
    thresholds: dict[str, float] = field(default_factory=dict)
    trained: bool = False  # a version in MODEL_DIR (exported and checked by its training run)


Loader = Callable[..., Detector]


class ModelStore:
    """The loaded models of this process, the only global state the service has."""

    def __init__(self, settings: Settings, loader: Loader = load_detector) -> None:
        self.settings = settings
        self._loader = loader
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._detectors: dict[Path, Detector] = {}
        self._loading: dict[Path, threading.Lock] = {}
        self._project_paths: dict[str, Path] = {}  # project -> checkpoint it serves now
        self._versions: dict[Path, str] = {}
        self.state = ModelState.LOADING
        self.message = "loading"
        try:  # a bad MODEL_PATH fails at start, with the reason
            self.base_path = safe_model_path(settings.model_root_path, settings.model_path)
        except ModelPathRefused as exc:
            raise ValueError(f"MODEL_PATH: {exc}") from None
        # Known before loading, so /setup tells the right version while the model loads.
        self._file_versions = VersionCache()  # checkpoint versions, hashed once per file content
        self._planned_version = self._file_versions(self.base_path) if self.base_path.is_file() else UNTRAINED
        self._project_models: Callable[[str], tuple[Any, ...]] = lambda project: ()
        self._broken: dict[Path, str] = {}  # trained checkpoints that failed to load, and why
        self._prefetching: set[Path] = set()

    # -- base model ---------------------------------------------------------
    def start(self, background: bool = True) -> None:
        """Load the base model, in a thread unless told otherwise (tests, CLI)."""
        if background:
            threading.Thread(target=self._load_base, name="load-base-model", daemon=True).start()
        else:
            self._load_base()

    def _load_base(self) -> None:
        try:
            path = self.base_path
            failed = None
            if not path.is_file() and weights.can_fetch(self.settings, path):
                self.state, self.message = ModelState.DOWNLOADING, f"downloading {path.name} (first start)"
                try:
                    weights.fetch(self.settings, path)
                except weights.DownloadFailed as exc:
                    failed = str(exc)
                else:
                    self._planned_version = self._file_versions(path)
                    self.state, self.message = ModelState.LOADING, "loading"
            if not path.is_file():
                self.state, self.message = ModelState.NO_WEIGHTS, failed or self._missing(path)
                log.warning("%s; serving empty predictions as %r", self.message, UNTRAINED)
                return
            self._get(path)
            self.state, self.message = ModelState.READY, "ready"
        except BackendError as exc:
            self.state, self.message = ModelState.ERROR, str(exc)
            log.error("base model failed to load: %s", exc)
        except Exception as exc:  # keep serving /health with the reason
            self.state, self.message = ModelState.ERROR, f"{type(exc).__name__}: {exc}"
            log.exception("base model failed to load")
        finally:
            self._ready.set()

    def _missing(self, path: Path) -> str:
        """One line saying what to put where, when no download was tried."""
        if weights.published(path.name):
            return (f"no weights at {path} and WEIGHTS_DOWNLOAD is off: put {path.name} there (from "
                    f"{self.settings.weights_url.rstrip('/')}/{path.name}), or set MODEL_PATH to a checkpoint under "
                    "MODEL_ROOT")
        return (f"no weights at {path}: put a checkpoint there (e.g. yolov5nu.pt from the Ultralytics releases), "
                "set MODEL_PATH to one under MODEL_ROOT, or train one from Label Studio")

    @property
    def ready(self) -> bool:
        """The base model settled (loaded, missing or failed): lookups no longer block."""
        return self._ready.is_set()

    def wait(self, timeout: float) -> None:
        """Block until the base model settled; ModelNotReady (503) after ``timeout``."""
        if not self._ready.wait(timeout):
            raise ModelNotReady(f"the model is still loading; try again in a few seconds (waited {timeout:.0f} s)")

    @property
    def base_version(self) -> str:
        if self.state in (ModelState.READY, ModelState.LOADING):
            return self._planned_version
        return UNTRAINED

    # -- lookups ------------------------------------------------------------
    def _get(self, path: Path, prepare: bool = True) -> ServedModel:
        """The loaded model at ``path``, loading it once; other checkpoints keep serving meanwhile.

        ``prepare=False`` (trained versions): serve the export its training run made and checked,
        or torch; never export or check here.
        """
        path = path.resolve()
        with self._lock:
            if path in self._detectors:
                return ServedModel(self._detectors[path], self._versions[path])
            loading = self._loading.setdefault(path, threading.Lock())
        with loading:  # one load per path, without holding up requests for other models
            with self._lock:
                if path in self._detectors:
                    return ServedModel(self._detectors[path], self._versions[path])
            version = self._file_versions(path)  # hashed once: /setup's plan may have done it already
            options = dict(imgsz=self.settings.fixed_imgsz, iou=self.settings.fixed_iou, max_det=self.settings.max_det,
                           batch_size=self.settings.batch_size, torch_threads=self.settings.torch_threads,
                           workers=self.settings.workers, prepare=prepare, int8=self.settings.int8,
                           lanes=self.settings.bulk_lanes)
            # Exports (runtime.py) are keyed by the checkpoint's content and image size, not its name.
            runtime = dict(runtime=self.settings.runtime, version=version,
                           cache_root=self.settings.model_dir_path / "runtime")
            detector = self._loader(path, device=self.settings.device, **options, **runtime)
            with self._lock:
                self._detectors[path] = detector
                self._versions[path] = version
            return ServedModel(detector, version)

    def _retire(self, project: str, path: Path) -> None:
        """Forget a project's previous checkpoint once a newer one serves, so memory stays flat."""
        path = path.resolve()
        with self._lock:
            old = self._project_paths.get(project)
            self._project_paths[project] = path
            if old is None or old == path or old == self.base_path or old in self._project_paths.values():
                return
            self._detectors.pop(old, None)
            self._versions.pop(old, None)
            self._loading.pop(old, None)
            log.info("project %s: unloaded %s, replaced by %s", project, old.name, path.name)

    def base(self) -> ServedModel:
        self.wait(self.settings.load_wait_seconds)
        if self.state != ModelState.READY:
            return ServedModel(None, UNTRAINED)
        return self._get(self.base_path)

    def for_control(self, model_path: str) -> ServedModel:
        """A per-control ``model_path``: a file under MODEL_ROOT, loaded on first use."""
        path = safe_model_path(self.settings.model_root_path, model_path)
        if not path.is_file():
            raise ModelPathRefused(f"model_path {model_path!r} not found under MODEL_ROOT")
        return self._get(path)

    # -- which checkpoint serves what, without loading -------------------------
    def plan(self, project: str | None, control: str | None = None, model_path: str | None = None) -> Plan:
        """The checkpoint and version serving ``control`` of ``project``: from files and the registry only.

        A project's promoted version serves the control it was trained for (older versions
        without that record serve every control without a ``model_path``); other controls keep
        their base: the control's ``model_path``, else the base model. A version that failed to
        load is skipped for the next one down, then the base.
        """
        mine = (control,) if model_path else (None, control)  # a model_path control: only its own versions
        for model in self._project_models(project) if project else ():
            if (control is not None and model.control not in mine) or model.path.resolve() in self._broken:
                continue
            if model.path.is_file():
                return Plan(model.path, model.version, model.thresholds, trained=True)
        if model_path:
            path = safe_model_path(self.settings.model_root_path, model_path)
            return Plan(path, self._file_versions(path) if path.is_file() else UNTRAINED)
        if self.base_version == UNTRAINED:
            return Plan(None, UNTRAINED)
        return Plan(self.base_path, self.base_version)

    def serve(self, project: str | None, control: str | None = None, model_path: str | None = None) -> ServedModel:
        """The loaded model for ``control`` of ``project``; a trained version that fails to load is
        recorded (``problems``, shown by /health) and the next one down serves instead."""
        while True:
            plan = self.plan(project, control, model_path)
            if not plan.trained:
                return self.for_control(model_path) if model_path else self.base()
            try:
                served = self._get(plan.path, prepare=False)  # type: ignore[arg-type]
            except Exception as exc:  # a broken checkpoint must never stop the project from being served
                self._mark_broken(project, control, plan, exc)
                continue
            self._retire(f"{project}/{control}", plan.path)  # type: ignore[arg-type]
            return ServedModel(served.detector, plan.version, plan.thresholds)

    def serve_made(self, project: str | None, control: str, path: Path, version: str) -> ServedModel:
        """A checkpoint this service made in MODEL_DIR (a prompted one: ``prompts``) serving ``control``, on torch.

        Like a trained version it replaces the control's previous one in memory (``_retire``).
        """
        served = self._get(path, prepare=False)
        self._retire(f"{project}/{control}", path)
        return ServedModel(served.detector, version)

    def _mark_broken(self, project: str | None, control: str | None, plan: Plan, exc: Exception) -> None:
        path = plan.path.resolve()  # type: ignore[union-attr]
        self._broken[path] = "failed to load"  # set first: the plan below then skips it
        instead = self.plan(project, control).version
        self._broken[path] = (f"project {project}: {plan.version} failed to load ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); serving {instead} instead")
        log.error("%s", self._broken[path])

    def prefetch(self, project: str | None, controls: list[tuple[str, str | None]]) -> None:
        """Load a newly promoted version in the background, so the next task opens at full speed."""
        for name, model_path in controls:
            plan = self.plan(project, name, model_path)
            if not plan.trained or plan.path is None:
                continue
            path = plan.path.resolve()
            with self._lock:
                if path in self._detectors or path in self._prefetching:
                    continue
                self._prefetching.add(path)
            threading.Thread(target=self._prefetch_one, args=(project, name), daemon=True,
                             name=f"prefetch-{path.name}").start()

    def _prefetch_one(self, project: str | None, control: str) -> None:
        try:
            self.serve(project, control)
        except Exception:  # recorded by serve(); a prefetch never raises
            log.debug("prefetch for project %s failed", project, exc_info=True)

    def loaded(self, path: Path | None) -> Detector | None:
        """The detector at ``path`` if it is loaded already; never loads."""
        with self._lock:
            return self._detectors.get(path.resolve()) if path is not None else None

    @property
    def problems(self) -> list[str]:
        """What is wrong right now, for /health: trained versions that failed to load."""
        return list(self._broken.values())

    def for_project(self, project: str | None) -> ServedModel:
        """The project's promoted model (any control) when training produced one, else the base model."""
        return self.serve(project)

    def use_project_models(self, lookup: Callable[[str], tuple[Any, ...]]) -> None:
        """Seam for training: ``lookup(project_id)`` -> promoted versions (``registry.ProjectModel``),
        the served one first, then the earlier ones still on disk."""
        self._project_models = lookup

    def versions(self) -> list[str]:
        with self._lock:
            return sorted(set(self._versions.values()))
