"""Text prompts for labels no class knows: an open-vocabulary checkpoint, prompted with the labels, as a checkpoint.

A control whose labels include one no class of the base checkpoint maps to (a receipt: COCO has
none), or a label carrying ``model_prompt="..."``, is served by ``PROMPT_MODEL`` (Ultralytics'
YOLOE, e.g. ``yoloe-11s-seg.pt``, under MODEL_ROOT) until a trained version of the project serves
it. The prompt model's classes are set to the control's labels, each detected by its text (the
label, or its ``model_prompt``): the text embeddings are computed once per label set and the
prompted model is saved as a checkpoint of its own, ``MODEL_DIR/prompted/<key>.pt``, whose class
names are the labels. From then on it is an ordinary checkpoint: served like the base, its version
in every prediction, and the project's served baseline that the promotion gate judges a trained
candidate against, on the same holdout, by the same procedure (``training.train``).

The text encoder is the prompt model's own (YOLOE: MobileCLIP, which Ultralytics fetches on
first use as ``mobileclip_blt.ts`` and tokenises with the ``clip`` package); offline, ``/health``
says what to fetch. ``TextEncoder`` is the seam: what turns prompts into embeddings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import Settings
from ..core.checkpoints import VersionCache, safe_model_path
from ..errors import BackendError
from ..formats.controls import ControlSpec, map_classes

log = logging.getLogger(__name__)

OPTION = "model_prompt"  # on a <Label>: the text it is detected by
FOLDER = "prompted"  # under MODEL_DIR: one checkpoint per prompt model and label set
RETRY_SECONDS = 60.0  # after a failure (no encoder, no file), requests are answered by the base until then

TextEncoder = Callable[[Any, Sequence[str]], Any]  # (loaded prompt model, prompts) -> embeddings (1, n, dim)


class PromptUnavailable(BackendError):
    """The prompt model or its text encoder is missing; the message says what to fetch."""

    status = 503
    kind = "prompt_model"


def ultralytics_text(model: Any, prompts: Sequence[str]) -> Any:
    """The prompt model's own text embeddings (YOLOE's ``get_text_pe``: MobileCLIP, fetched on first use)."""
    try:
        return model.get_text_pe(list(prompts))
    except Exception as exc:  # offline: the encoder's download fails; without `clip`, its install does
        raise PromptUnavailable(
            f"PROMPT_MODEL's text encoder is not available ({type(exc).__name__}: {str(exc)[:160]}): on a machine "
            "with internet, run `python -c \"from ultralytics import YOLOE; YOLOE('yoloe-11s-seg.pt')"
            ".get_text_pe(['x'])\"` once and copy mobileclip_blt.ts beside the service (its working directory), and "
            "`pip install git+https://github.com/ultralytics/CLIP.git`") from None


def prompts_for(spec: ControlSpec, class_names: Mapping[int, str]) -> tuple[str, ...] | None:
    """The text each label of ``spec`` is detected by, when the prompt model serves it; None: the base serves it
    (or the control's own model_path: whoever named a checkpoint for it chose what serves it)."""
    if not spec.labels or spec.click_tool or spec.model_path or \
            spec.kind not in ("rectanglelabels", "polygonlabels", "brushlabels"):
        return None
    own = {label: dict(options).get(OPTION) for label, options in spec.label_options}
    known = set(map_classes(spec, class_names).values())
    if all(label in known for label in spec.labels) and not any(own.values()):
        return None
    return tuple((own.get(label) or label).strip() or label for label in spec.labels)


class PromptModels:
    """Makes and finds prompted checkpoints; ``enabled`` only with PROMPT_MODEL set."""

    def __init__(self, settings: Settings, encoder: TextEncoder = ultralytics_text) -> None:
        self.settings = settings
        self.encoder = encoder
        self.source = (safe_model_path(settings.model_root_path, settings.prompt_model)
                       if settings.prompt_model else None)
        self.folder = settings.model_dir_path / FOLDER
        self.problem: str | None = None  # the last failure, for /health
        self._versions = VersionCache()
        self._making: dict[Path, threading.Lock] = {}
        self._failed: dict[Path, float] = {}  # checkpoint -> when making it last failed
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.source is not None

    def key(self, labels: Sequence[str], prompts: Sequence[str]) -> str:
        """12 hex naming a prompt model's file content, the labels and their prompts: its checkpoint's name."""
        assert self.source is not None
        source = self._versions(self.source) if self.source.is_file() else "missing"
        text = json.dumps([source, list(labels), list(prompts)])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def path(self, labels: Sequence[str], prompts: Sequence[str]) -> Path:
        return self.folder / f"prompted-{self.key(labels, prompts)}.pt"

    def version(self, labels: Sequence[str], prompts: Sequence[str]) -> str:
        """The version its predictions carry, known without making it: ``<prompt model>-prompt-<key>``."""
        assert self.source is not None
        return f"{self.source.stem}-prompt-{self.key(labels, prompts)[:8]}"

    def make(self, labels: Sequence[str], prompts: Sequence[str]) -> Path:
        """The prompted checkpoint of this label set, made once (text embeddings included) and reused."""
        if self.source is None:
            raise PromptUnavailable("PROMPT_MODEL is not set")
        path = self.path(labels, prompts)
        with self._lock:
            making = self._making.setdefault(path, threading.Lock())
        with making:
            if path.is_file():
                return path
            if time.monotonic() - self._failed.get(path, -RETRY_SECONDS) < RETRY_SECONDS:
                raise PromptUnavailable(self.problem or "the prompted model could not be made")
            try:
                self._make(path, labels, prompts)
            except PromptUnavailable:
                self._failed[path] = time.monotonic()
                raise
            self._failed.pop(path, None)
            return path

    def _make(self, path: Path, labels: Sequence[str], prompts: Sequence[str]) -> None:
        """Load PROMPT_MODEL, set its classes to ``labels`` detected by ``prompts``' embeddings, save it at ``path``."""
        assert self.source is not None
        if not self.source.is_file():
            self.problem = (f"no PROMPT_MODEL at {self.source}: put {self.source.name} there (e.g. from "
                            f"{self.settings.weights_url.rstrip('/')}/yoloe-11s-seg.pt), or unset PROMPT_MODEL")
            raise PromptUnavailable(self.problem)
        from ultralytics import YOLO

        model = YOLO(str(self.source))
        if type(model).__name__ != "YOLOE":  # YOLO-World computes its CLIP embeddings inside set_classes
            self.problem = f"PROMPT_MODEL {self.source.name} is no open-vocabulary checkpoint (YOLOE)"
            raise PromptUnavailable(self.problem)
        try:
            embeddings = self.encoder(model, prompts)
        except PromptUnavailable as exc:
            self.problem = str(exc)
            raise
        model.set_classes(list(labels), embeddings)
        self.folder.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        model.save(str(part))
        os.replace(part, path)
        self.problem = None
        log.info("prompted %s with %d labels (%s) -> %s", self.source.name, len(labels),
                 ", ".join(f"{label}={prompt!r}" for label, prompt in zip(labels, prompts)), path.name)
