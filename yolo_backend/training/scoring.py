"""How good are a model's pre-labels on the holdout: mAP, and precision/recall/F1 at the serving thresholds.

Pure numpy on plain data, so every rule of the promotion gate is tested without a model.
Predictions are already mapped to the project's labels (index into the control's labels)
exactly as the service maps them, so a COCO base serving through ``predicted_values`` and
a model trained on the project are scored by the same rules.

Matching is one to one and greedy by score (COCO's rule): the best-scored prediction
claims the unclaimed truth of its class it overlaps most. Greedy matching has a useful
property: the matches among predictions above a threshold are the same whatever the
threshold, so every threshold's counts come from one matching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..formats.overlap import box_iou
from . import confidence

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # mAP50-95, as COCO and Ultralytics
MATCH_IOU = 0.5  # a pre-label is useful when it overlaps an object of its class this much
MIN_THRESHOLD = 0.05  # per-class thresholds never go lower: below, boxes are mostly noise


@dataclass(frozen=True)
class Found:
    """One prediction, mapped to the project's label ``label`` (index)."""

    label: int
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 pixels
    shape: Any = None  # the kind's own geometry (outline, corners, keypoints), compared by ``ious``


@dataclass(frozen=True)
class Truth:
    label: int
    box: tuple[float, float, float, float]
    shape: Any = None


@dataclass(frozen=True)
class Image:
    """One holdout image: what the model found, what the annotator drew, and how much each pair overlaps.

    ``ious`` (found x truth) comes from the kind's geometry (``Kind.overlap``: masks by
    their outlines, keypoints by OKS); without it, boxes by IoU. Computed once per image.
    """

    found: tuple[Found, ...]
    truth: tuple[Truth, ...]
    ious: np.ndarray | None = field(default=None, compare=False, repr=False)

    def overlaps(self) -> np.ndarray:
        if self.ious is not None:
            return self.ious
        return box_iou(np.array([f.box for f in self.found], float).reshape(-1, 4),
                       np.array([t.box for t in self.truth], float).reshape(-1, 4))


@dataclass(frozen=True)
class Scores:
    """A model on the holdout. ``f1`` is at the thresholds it is served with; that is what annotators get."""

    images: int
    objects: int
    map50_95: float
    map50: float
    precision: float
    recall: float
    f1: float
    f1_default: float  # at MODEL_SCORE_THRESHOLD for every class, for reference
    thresholds: str  # how f1's thresholds were chosen: "control", "default", "per-class (...)"
    top1: float = 0.0  # share of images whose best-scored prediction is an annotated class (classes' metric)
    metric: str = "mAP50-95"  # the kind's holdout metric, which must not fall for a promotion
    per_image: tuple[Counts, ...] = field(default=(), repr=False, compare=False)  # f1's counts, image by image

    @property
    def quality(self) -> float:
        """The value of ``metric``."""
        return self.top1 if self.metric == "top-1" else self.map50_95

    def to_json(self) -> dict[str, object]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items() if k != "per_image"}


def match(image: Image, iou_min: float = MATCH_IOU) -> list[bool]:
    """Per prediction (in ``image.found`` order): does it claim a truth of its class, one to one?"""
    hits = [False] * len(image.found)
    if not image.found or not image.truth:
        return hits
    ious = image.overlaps()
    claimed: set[int] = set()
    for i in sorted(range(len(image.found)), key=lambda k: -image.found[k].score):
        best, best_iou = -1, iou_min
        for j, truth in enumerate(image.truth):
            if j not in claimed and truth.label == image.found[i].label and ious[i, j] >= best_iou:
                best, best_iou = j, ious[i, j]
        if best >= 0:
            claimed.add(best)
            hits[i] = True
    return hits


def average_precision(images: Sequence[Image]) -> tuple[float, float]:
    """(mAP50-95, mAP50) over the labels present in the truths; (0, 0) when nothing is annotated."""
    truths = [t.label for image in images for t in image.truth]
    if not truths:
        return 0.0, 0.0
    from ultralytics.utils.metrics import ap_per_class  # the same AP integration as `yolo val`

    found = [f for image in images for f in image.found]
    if not found:
        return 0.0, 0.0
    tp = _tp_matrix(images)
    ap = ap_per_class(tp, np.array([f.score for f in found]), np.array([f.label for f in found]),
                      np.array(truths))[5]
    return float(ap.mean()), float(ap[:, 0].mean())


def _tp_matrix(images: Sequence[Image]) -> np.ndarray:
    """(predictions, 10): whether each prediction is a true positive at each IoU threshold."""
    columns = [[hit for image in images for hit in match(image, float(t))] for t in IOU_THRESHOLDS]
    return np.array(columns, bool).T


@dataclass(frozen=True)
class Counts:
    tp: int
    fp: int
    fn: int

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else 0.0


def counts(images: Sequence[Image], thresholds: Sequence[float]) -> Counts:
    """TP/FP/FN of the pre-labels an annotator sees: predictions at or above their label's threshold."""
    return sum(per_image(images, thresholds), Counts(0, 0, 0))


def per_image(images: Sequence[Image], thresholds: Sequence[float]) -> list[Counts]:
    """``counts`` of each image on its own, in order (what the bootstrap in ``confidence`` resamples)."""
    out = []
    for image in images:
        tp = fp = 0
        for found, hit in zip(image.found, match(image)):
            if found.score >= thresholds[found.label]:
                tp, fp = tp + hit, fp + (not hit)
        out.append(Counts(tp, fp, len(image.truth) - tp))
    return out


def best_thresholds(images: Sequence[Image], n_labels: int, default: float) -> dict[int, float]:
    """Per label with objects in ``images``: the score threshold of highest F1 (ties: the higher one).

    The threshold sits midway between the lowest score the best cut keeps and the highest it
    drops: a cut at the lowest kept score itself would hide the same object on a new image
    scored a hair lower (scores move between images, and between runs of the same recipe).
    A best cut that keeps every prediction of the label is lowered to ``default``, as the
    holdout gives no reason for it. Labels without any annotated object keep ``default``
    (they are left out of the result).
    """
    chosen: dict[int, float] = {}
    for label in range(n_labels):
        objects = sum(1 for image in images for t in image.truth if t.label == label)
        if not objects:
            continue
        scored = sorted(((f.score, hit) for image in images for f, hit in zip(image.found, match(image))
                         if f.label == label and f.score >= MIN_THRESHOLD), reverse=True)
        best_f1, best, below = -1.0, max(default, MIN_THRESHOLD), None
        tp = fp = 0
        for index, (score, hit) in enumerate(scored):
            tp, fp = tp + hit, fp + (not hit)
            if index + 1 < len(scored) and scored[index + 1][0] == score:
                continue  # a threshold keeps every prediction of the same score
            f1 = 2 * tp / (2 * tp + fp + (objects - tp))
            if f1 > best_f1 + 1e-12:
                best_f1, best = f1, score
                below = scored[index + 1][0] if index + 1 < len(scored) else None
        if below is not None:
            best = (best + below) / 2
        elif scored:
            # the best cut drops nothing: the holdout shows no score below which predictions go wrong, so
            # the threshold is no higher than the default (a confident classifier's 0.98 would hide 0.97s)
            best = max(min(best, default), MIN_THRESHOLD)
        chosen[label] = round(float(best), 4)
    return chosen


def cross_fitted(images: Sequence[Image], n_labels: int, default: float) -> Counts:
    """Counts of per-class thresholds judged on images they were not chosen on (two folds, swapped).

    Choosing thresholds on the holdout and scoring them there would flatter the model.
    """
    return sum(cross_fitted_per_image(images, n_labels, default), Counts(0, 0, 0))


def cross_fitted_per_image(images: Sequence[Image], n_labels: int, default: float) -> list[Counts]:
    """``cross_fitted`` image by image, in order: even images at the odd ones' thresholds, and back."""
    out: list[Counts] = [Counts(0, 0, 0)] * len(images)
    for start in (0, 1):
        picked = best_thresholds(images[1 - start::2], n_labels, default)
        judged = per_image(images[start::2], [picked.get(label, default) for label in range(n_labels)])
        out[start::2] = judged
    return out


def top1(images: Sequence[Image]) -> float:
    """Share of images with annotated classes whose best-scored prediction is one of them."""
    judged = [image for image in images if image.truth]
    hits = sum(1 for image in judged if image.found and
               max(image.found, key=lambda f: f.score).label in {t.label for t in image.truth})
    return hits / len(judged) if judged else 0.0


def score(images: Sequence[Image], n_labels: int, default: float, served_thresholds: Sequence[float] | None = None,
          control_threshold: float | None = None, choose_per_class: bool = False, metric: str = "mAP50-95"
          ) -> Scores:
    """All holdout scores of one model.

    The thresholds ``f1`` uses, in Label Studio's order of precedence: the control's
    ``model_score_threshold``; else ``served_thresholds`` (given thresholds: the int8 gate
    judges a version at its own); else, with per-class thresholds on, thresholds chosen per
    class (cross-fitted); else ``default`` for every label. The promotion gate never passes
    ``served_thresholds``: a served version's own were chosen on (most of) this holdout, so
    it is cross-fitted like the candidate (``train.judge``).
    """
    map50_95, map50 = average_precision(images)
    flat = [default] * n_labels
    at_default = per_image(images, flat)
    if control_threshold is not None:
        chosen, how = per_image(images, [control_threshold] * n_labels), "control"
    elif served_thresholds is not None:
        chosen, how = per_image(images, served_thresholds), "per-class (the version's own)"
    elif choose_per_class:
        chosen, how = cross_fitted_per_image(images, n_labels, default), "per-class (cross-fitted on the holdout)"
    else:
        chosen, how = at_default, "default"
    total = sum(chosen, Counts(0, 0, 0))
    return Scores(images=len(images), objects=sum(len(i.truth) for i in images), map50_95=map50_95, map50=map50,
                  precision=total.precision, recall=total.recall, f1=total.f1,
                  f1_default=sum(at_default, Counts(0, 0, 0)).f1, thresholds=how, top1=top1(images), metric=metric,
                  per_image=tuple(chosen))


@dataclass(frozen=True)
class Gain:
    """The candidate's F1 minus the served model's on one holdout, and how sure that is (``confidence``)."""

    f1: float
    low: float  # the interval's bounds: the gain is above ``low`` in 95 of 100 resamples (LEVEL 0.90, two-sided)
    high: float
    level: float = confidence.LEVEL
    resamples: int = confidence.RESAMPLES
    images: int = 0

    def to_json(self) -> dict[str, object]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def text(self) -> str:
        return f"gain {self.f1:+.3f}, {self.level:.0%} interval {self.low:+.3f} to {self.high:+.3f}"


def gain(candidate: Scores, served: Scores) -> Gain:
    """F1 gain with its paired bootstrap interval over the holdout images both were judged on.

    Scores made by hand (no ``per_image``) get a zero-width interval at the point gain.
    """
    point = candidate.f1 - served.f1
    if not candidate.per_image and not served.per_image:
        return Gain(point, point, point, images=candidate.images)
    low, high = confidence.gain_interval([(c.tp, c.fp, c.fn) for c in candidate.per_image],
                                         [(c.tp, c.fp, c.fn) for c in served.per_image])
    return Gain(point, low, high, images=len(candidate.per_image))


def decide(candidate: Scores, served: Scores, min_gain: float, judged: Gain | None = None) -> tuple[bool, str]:
    """The promotion rule: surely better pre-labels, better by a margin, and the kind's metric no worse.

    Promote only when the F1 gain's interval (``judged``: a paired bootstrap over the holdout
    images, the candidate at its serving thresholds against the served model judged the same
    way) lies above zero, the gain itself is at least ``min_gain``, and the metric (mAP50-95;
    top-1 for classes) is not lower. The margin is asked of the gain, not of the interval's low
    end: asked of the low end, a run that is surely better by +0.03 on 40 holdout images was
    rejected again and again while annotators kept the older version (docs/loop.md). A tie (every
    image counted alike, the interval [0, 0]) promotes only at PROMOTE_MIN_GAIN=0.
    """
    judged = judged or gain(candidate, served)
    facts = (f"F1 {candidate.f1:.3f} vs served {served.f1:.3f} ({judged.text()}), {candidate.metric} "
             f"{candidate.quality:.3f} vs {served.quality:.3f} on {candidate.images} holdout images")
    sure = judged.low > 1e-9 or (min_gain <= 0 and judged.low >= -1e-9)
    if judged.f1 < min_gain - 1e-9 or not sure:
        how = "not surely" if judged.f1 >= min_gain - 1e-9 else "not"  # "not surely": too few images to tell
        return False, f"pre-labels {how} better by PROMOTE_MIN_GAIN={min_gain:g}: {facts}"
    if candidate.quality < served.quality - 1e-9:
        return False, f"{'boxes' if candidate.metric == 'mAP50-95' else 'classes'} worse ({candidate.metric} fell): " \
                      f"{facts}"
    if judged.low <= 1e-9:
        return True, f"as good, and PROMOTE_MIN_GAIN={min_gain:g} promotes ties: {facts}"
    return True, f"better pre-labels: {facts}"
