"""A segment-anything checkpoint answering clicks and boxes: image embeddings cached, so later clicks cost the decoder.

Ultralytics' ``SAM`` class loads MobileSAM, SAM and SAM 2 checkpoints (``ASSIST_MODEL``, a file
under MODEL_ROOT). Its predictor splits the work as the model does: ``set_image`` runs the image
encoder (seconds on a CPU), ``inference_features`` the prompt decoder on those features (tens of
milliseconds). The features of the last ``CACHED_IMAGES`` images are kept, keyed by task and image,
so a second click on the same image, or a box after a click, costs only the decoder.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError
from ..formats.convert import Detection
from ..kinds import masks
from ..logs import bounded_put

log = logging.getLogger(__name__)

CACHED_IMAGES = 4  # embeddings kept (MobileSAM: 4 MB each; SAM 2's with its high-resolution maps: about 20 MB)
INPUT_SIZE = 1024  # the encoder's input side, as Ultralytics' SAM.predict sets it


class Segmenter:
    """One SAM checkpoint; ``segment`` is safe to call from many threads (calls are serialised)."""

    def __init__(self, path: Path, device: str = "cpu", cached_images: int = CACHED_IMAGES) -> None:
        try:
            from ultralytics import SAM

            self.model = SAM(str(path))
            overrides = dict(conf=0.25, task="segment", mode="predict", imgsz=INPUT_SIZE, device=device,
                             save=False, verbose=False)
            self.predictor = self.model._smart_load("predictor")(overrides=overrides, _callbacks=self.model.callbacks)
            self.predictor.setup_model(model=self.model.model, verbose=False)
        except Exception as exc:  # a file that is no SAM checkpoint: said, and the YOLO fallback answers
            raise ModelLoadError(f"ASSIST_MODEL {path.name} is no segment-anything checkpoint Ultralytics' SAM "
                                 f"loads (mobile_sam.pt, sam_b.pt, sam2_t.pt, ...): {type(exc).__name__}: "
                                 f"{str(exc)[:200]}") from None
        self.name = path.name
        self.cached_images = cached_images
        self.embedded = 0  # images run through the encoder, the expensive step
        self._features: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def segment(self, key: Hashable, image: np.ndarray, points: Sequence[tuple[float, float, bool]] = (),
                box: Sequence[float] | None = None) -> Detection | None:
        """The object the points (pixels, positive or not) and box (x1, y1, x2, y2 pixels) point at, as a mask outline.

        ``key`` names the image (its task and URL): its embedding is reused while cached.
        """
        if not points and box is None:
            return None
        prompts: dict[str, Any] = {}
        if points:
            prompts["points"] = [[[x, y] for x, y, _ in points]]
            prompts["labels"] = [[1 if positive else 0 for _, _, positive in points]]
        if box is not None:
            prompts["bboxes"] = [list(map(float, box))]
        with self._lock:
            features = self._embedding(key, image)
            found, boxes = type(self.predictor).inference_features(self.predictor, features, image.shape[:2],
                                                                    **prompts)
        if found is None or len(found) == 0:
            return None
        mask = found[0].cpu().numpy().astype(bool)
        outline = masks.mask_outline(mask)
        if outline is None:
            return None
        ys, xs = np.nonzero(mask)
        score = float(boxes[0, 4]) if boxes.shape[1] > 4 else 1.0
        return Detection(0, score, (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())),
                         tuple((float(x), float(y)) for x, y in outline))

    def _embedding(self, key: Hashable, image: np.ndarray) -> Any:
        """The encoder's features of ``image``, computed once while ``key`` stays among the last cached."""
        if key in self._features:
            self._features.move_to_end(key)
            return self._features[key]
        self.predictor.set_image(image)
        features = self.predictor.features
        self.predictor.reset_image()  # the cache holds it; the predictor keeps no second reference
        self.embedded += 1
        bounded_put(self._features, key, features, self.cached_images)
        return features
