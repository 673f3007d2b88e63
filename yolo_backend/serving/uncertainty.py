"""How sure the model is of a whole task: the ``score`` Label Studio's Data Manager sorts by.

Label Studio reads a prediction's ``score`` as the model's confidence in the task (its API:
"can be used in Data Manager to sort tasks by model confidence"), so a low score means
"look at me first": order the Data Manager by *Prediction score*, ascending
(docs/uncertainty.md).

The measure (``TASK_SCORE=uncertainty``) counts the model's borderline decisions on an image:

1. Every candidate the detector gives down to a floor below the serving threshold is one
   keep/drop decision. Its score is placed on a probability scale whose midpoint is the
   threshold: the floor maps to 0, the threshold to 0.5, a score of 1 to 1 (piecewise linear),
   because the threshold, not 0.5, is where a pre-label appears or vanishes.
2. The decision's doubt is its binary entropy in bits: 1 for a candidate right at the
   threshold, near 0 for one far above it or near the floor (entropy per detection as in
   Roy et al., "Deep Active Learning for Object Detection", BMVC 2018, and Haussmann et al.,
   "Scalable Active Learning for Object Detection", IV 2020).
3. The image's doubt is the *sum* over its candidates (Brust et al., "Active Learning for Deep
   Object Detection", VISAPP 2019, compare sum, mean and max of per-detection scores): ten
   borderline objects are ten things to check, one is one; a mean or a max would rank them alike.
4. The task score is ``1 / (1 + doubt)``: 1 when nothing is in doubt, 0.5 for one fully
   borderline object, 0.1 for nine; it stays distinct at 4 decimals up to thousands of objects.

A single ``<Choices>`` control is one decision among classes: its doubt is ``1 - (p1 - p2)``,
the margin of the two best classes (margin sampling, Scheffer et al., IDA 2001). A multiple
choice is one keep/drop decision per class, as above. A video track counts as one decision,
its mean score against the control's threshold (the tracker never shows what it dropped).

An image where nothing reaches the floor has nothing in doubt and scores 1: the model is sure
it holds nothing. Uncertainty sampling cannot see a model's blind spots; label some tasks in
random order too (docs/uncertainty.md). A task no model looked at (no weights, an image that
could not be read) scores 0: nothing is known of it.

``TASK_SCORE=mean`` keeps the former score, the mean region score (0 for an empty result).

Plain functions on plain data, as ``convert``: no torch, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from ..formats.convert import Detection, Target
from ..kinds import classes

# The lowest score counted as a decision: below it YOLO's candidates are mostly background noise
# (Ultralytics' ByteTrack keeps low boxes from 0.1 up, track_low_thresh). Never above half the threshold.
FLOOR = 0.1


def floor_for(threshold: float) -> float:
    """The lowest candidate score counted for a class served at ``threshold``."""
    return min(FLOOR, threshold / 2)


def ask_conf(lowest_threshold: float, measure: str) -> float:
    """The ``conf`` the detector is asked at: the threshold for ``mean``, down to the floor for ``uncertainty``.

    One inference serves both: the regions shown are filtered by their thresholds afterwards
    (``kinds``), so they are the same either way.
    """
    return lowest_threshold if measure == "mean" else floor_for(lowest_threshold)


def decision_probability(score: float, threshold: float, floor: float) -> float:
    """``score`` on a scale where ``floor`` is 0, ``threshold`` is 0.5 and 1 is 1 (piecewise linear)."""
    if score >= threshold:
        return 1.0 if threshold >= 1 else 0.5 + 0.5 * (score - threshold) / (1 - threshold)
    if threshold <= floor:
        return 0.0
    return max(0.0, 0.5 * (score - floor) / (threshold - floor))


def binary_entropy(p: float) -> float:
    """Entropy in bits of a yes/no decision taken with probability ``p``: 1 at 0.5, 0 at 0 and 1."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def decision_doubt(score: float, threshold: float) -> float:
    """Bits of doubt in keeping or dropping one candidate of ``score`` at ``threshold``."""
    return binary_entropy(decision_probability(score, threshold, floor_for(threshold)))


def margin_doubt(scores: Sequence[float]) -> float:
    """``1 - (p1 - p2)``: how close the two best classes are (1: a tie; 0: one class is certain)."""
    best = [*sorted(scores, reverse=True)[:2], 0.0, 0.0]
    return 1.0 - (best[0] - best[1])


def detections_doubt(detections: Sequence[Detection], target: Target) -> float:
    """The summed doubt of one control's decisions on one image (its labels only)."""
    if target.spec.kind == classes.KIND.RESULT_TYPE and not classes.is_multiple(target.spec.options):
        # One choice among classes; the model's own ranking of all its classes, mapped or not.
        return margin_doubt([det.score for det in detections]) if detections else 0.0
    return sum(decision_doubt(det.score, target.threshold_for(det.class_id)) for det in detections
               if det.class_id in target.labels and det.score >= floor_for(target.threshold_for(det.class_id)))


def image_doubt(detections: Sequence[Detection], targets: Iterable[Target]) -> float:
    """The summed doubt of every control that one inference on one image serves."""
    return sum(detections_doubt(detections, target) for target in targets)


def regions_doubt(regions: Iterable[dict[str, Any]], targets: Iterable[Target]) -> float:
    """Doubt from the scored regions of ``targets`` alone (video tracks), each one decision at its threshold."""
    thresholds = {target.spec.from_name: target.threshold for target in targets}
    return sum(decision_doubt(float(r["score"]), thresholds[r["from_name"]]) for r in regions
               if r.get("from_name") in thresholds and r.get("score") is not None)


def confidence(doubt: float) -> float:
    """``1 / (1 + doubt)``: 1 with nothing in doubt, 0.5 with one borderline decision, towards 0 with many."""
    return 1.0 / (1.0 + max(doubt, 0.0))


def mean_score(regions: Sequence[dict[str, Any]]) -> float:
    """The former task score: the mean region score, 0 without regions."""
    scores = [float(r["score"]) for r in regions if r.get("score") is not None]
    return sum(scores) / len(scores) if scores else 0.0


def task_score(regions: Sequence[dict[str, Any]], doubt: float | None, measure: str) -> float:
    """The task's ``score`` by ``measure``: ``uncertainty`` (``confidence(doubt)``) or ``mean``.

    ``doubt`` None: no model looked at the task (no weights, no control it serves, its image
    failed), so nothing is known of it: 0, as the mean gives an empty result.
    """
    if measure == "mean":
        return mean_score(regions)
    return 0.0 if doubt is None else confidence(doubt)
