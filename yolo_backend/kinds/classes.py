"""Classes: ``<Choices>`` on an image (single or ``choice="multiple"``), from a classify checkpoint.

A choice names the whole image, so this kind is one region per image and control, not one
per object: ``{"type": "choices", "value": {"choices": [label, ...]}, "score": ...}``.

Model output: ``Results.probs``, which the detector turns into one whole-image ``Detection``
per class (probability >= 1e-3), best first. Serving picks from them (``results``):

- single choice: the model's best class, when it maps to a choice (``predicted_values``,
  exact, case-folded: ``controls.map_classes``) and passes its threshold. A lower class
  is never put in its place: it would be a pre-label the model itself ranks second;
- ``choice="multiple"``: every mapped class that passes its threshold (``yolo-ls`` and
  ``/predict`` only: ``/setup`` refuses it and training passes the control over, see ``refusal``).

Either way one region holds the chosen labels (best first) with the best one's score, and
nothing is given when no class passes.

No multi-label path: Ultralytics' classify head is a softmax trained with cross-entropy on
one folder per image (``ClassificationDataset`` is torchvision's ``ImageFolder``), so the
probabilities add up to 1, at most one class ever passes 0.5, and an image filed under two
classes teaches each as the wrong answer for the other.

YOLO side: an Ultralytics classify dataset has no label files, an image's class is its
folder (``<split>/<class>/<image>``). Inside this backend a class is a label row holding only
the class index (``"2"``), one row per choice; ``training.examples`` and ``yolo_export`` write
those rows as folders (an image with two choices sits in both), and ``import_regions`` reads
them back. ``to_value``/``from_yolo`` have no geometry to convert (``{}``: the envelope adds
the label), and ``to_line`` gives no row: without the control, a choice is not written into an
object dataset's label files.

Holdout scoring: a truth is (class, the whole image, no shape) and ``overlap`` is all ones,
so a prediction matches an annotated class of its image by label alone; the metric is top-1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..formats import convert
from ..formats.controls import ControlSpec
from ..formats.convert import Detection, Place, Target, YoloBox
from .base import Pair, WholeImageKind

MULTIPLE = ("multiple",)  # <Choices choice="multiple">; "single" and "single-radio" pick one

Box = tuple[float, float, float, float]


def is_multiple(options: Sequence[tuple[str, str]]) -> bool:
    """Whether a control's options (``ControlSpec.options``) allow several choices."""
    return dict(options).get("choice", "single") in MULTIPLE


class Classes(WholeImageKind):
    """One region per image and control naming its class; scored by label alone (top-1)."""

    CONTROL = "Choices"
    RESULT_TYPE = "choices"
    TASKS = ("classify",)
    TRAIN_TASK = "classify"
    METRIC = "top-1"

    def refusal(self, spec: ControlSpec) -> str | None:
        """Why a classify checkpoint cannot serve or train ``spec`` (None: it can): ``choice="multiple"``."""
        if not is_multiple(spec.options):
            return None
        return (f'<Choices name="{spec.from_name}" choice="multiple"> cannot be pre-labeled or trained from an '
                "Ultralytics classify checkpoint: its softmax gives one class per image (the probabilities add up "
                "to 1, so at most one passes 0.5), and an image filed under two classes trains each as wrong for the "
                'other. Use choice="single" (one class per image), one <Choices> per yes/no question (each its own '
                'model_path), or model_skip="true" to leave this control to annotators.')

    # -- model output -> Label Studio ----------------------------------------------------------------
    def results(self, detections: Sequence[Detection], target: Target, width: int, height: int
                ) -> list[dict[str, Any]]:
        """The one choices region of ``target`` for an image, or none when no class passes its threshold."""
        spec = target.spec
        ranked = sorted(detections, key=lambda det: -det.score)
        if not is_multiple(spec.options):
            ranked = ranked[:1]  # single choice: the model's own best class, or nothing
        chosen = [det for det in ranked if det.class_id in target.labels
                  and det.score >= target.threshold_for(det.class_id)]
        labels = list(dict.fromkeys(target.labels[det.class_id] for det in chosen))  # two classes may map to one
        if not labels:
            return []
        return [choices_region(labels, from_name=spec.from_name, to_name=spec.to_name, size=(width, height),
                               region_id=convert.region_id(spec.from_name, spec.to_name, self.RESULT_TYPE),
                               score=chosen[0].score)]

    def to_value(self, det: Detection, width: int, height: int) -> dict[str, Any]:
        """No geometry: a choice is the label alone, which the envelope adds."""
        return {}

    # -- Label Studio -> YOLO label rows (training and export) ---------------------------------------
    def label_rows(self, regions: Sequence[dict[str, Any]], class_ids: Mapping[str, int], spec: ControlSpec
                   ) -> list[str]:
        """The choices of ``spec``'s regions in one annotation -> a class-index row per known choice, no repeats."""
        rows: dict[str, None] = {}
        for region in regions:
            if region.get("type") != self.RESULT_TYPE or region.get("from_name") != spec.from_name \
                    or region.get("to_name") not in (None, spec.to_name):
                continue
            for label in (region.get("value") or {}).get(self.RESULT_TYPE) or []:
                if str(label) in class_ids:
                    rows[str(class_ids[str(label)])] = None
        return list(rows)

    def to_line(self, region: dict[str, Any], class_id: int) -> str | None:
        """None: a choice is no object row, so object datasets (``region_line`` without a control) never get one.

        Class rows come from ``label_rows``, which knows the control (export: ``--label-config`` or ``--project``).
        """
        return None

    # -- YOLO rows -> Label Studio (import) ----------------------------------------------------------
    def from_yolo(self, label: YoloBox, width: int, height: int) -> dict[str, Any]:
        """No geometry to convert: the label is the value (``import_regions`` builds whole regions)."""
        return {}

    def import_regions(self, rows: Sequence[str], names: Mapping[int, str], place: Place) -> list[dict[str, Any]]:
        """One image's class rows (``"2"``, one per class) -> one choices region; none without rows.

        ValueError naming the fix for a class without a name.
        """
        labels: list[str] = []
        for row in rows:
            class_id = _class_of(row)
            if class_id not in names:
                raise ValueError(f"class {class_id} has no name (known: {', '.join(names.values())}): fix the row "
                                 "or pass the names with --classes")
            labels.append(names[class_id])
        labels = list(dict.fromkeys(labels))
        if not labels:
            return []
        return [choices_region(labels, from_name=place.from_name, to_name=place.to_name, size=place.size,
                               region_id=convert.region_id(place.seed, 0))]

    # -- holdout scoring -----------------------------------------------------------------------------
    def shown(self, detections: Sequence[Detection], spec: ControlSpec) -> list[Detection]:
        """What ``results`` could show: a single choice is the model's best class only (the holdout scores that)."""
        ranked = sorted(detections, key=lambda det: -det.score)
        return ranked if is_multiple(spec.options) else ranked[:1]

    def truth(self, row: str, width: int, height: int) -> tuple[int, Box, None]:
        """An annotated class: its index, the whole image as its box, no shape."""
        return _class_of(row), (0.0, 0.0, float(width), float(height)), None

    def overlap(self, found: Sequence[Pair], truths: Sequence[Pair]) -> np.ndarray:
        """All ones: a class prediction and an annotated class of the same image always overlap; labels decide."""
        return np.ones((len(found), len(truths)))


KIND = Classes()


def choices_region(labels: Sequence[str], *, from_name: str, to_name: str, size: tuple[int, int], region_id: str,
                   score: float | None = None) -> dict[str, Any]:
    """``convert.region``'s envelope (it holds one label) with every chosen label in ``value.choices``."""
    out = convert.region({}, labels[0], result_type=Classes.RESULT_TYPE, from_name=from_name, to_name=to_name,
                         size=size, region_id=region_id, score=score)
    out["value"][Classes.RESULT_TYPE] = list(labels)
    return out


def _class_of(row: str) -> int:
    try:
        return int(row.split()[0])
    except (IndexError, ValueError):
        raise ValueError(f"a class row is a class index, got {row.strip()!r}") from None
