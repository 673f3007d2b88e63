"""Which annotated boxes are probably wrong: cleanlab's ObjectLab scores, turned into flags by kind.

Pure numpy on plain data (``training.scoring.Image``: a model's out-of-sample boxes and the
annotator's boxes on one image, in pixels), so every rule is tested on hand-made cases.

cleanlab scores each box for three kinds of error (``cleanlab.object_detection.rank``); we
add the fourth, which ObjectLab has no score for:

=================  ====================================  ==============================================
our kind           cleanlab score (per box)              flagged when
=================  ====================================  ==============================================
``missed``         overlooked (per confident prediction  a prediction at least ``confident`` sure
                   that no annotated box overlaps)       overlaps no annotated box at all
``wrong_class``    swap (per annotated box)              a confident prediction of another class
                                                         covers the box (swap score <= ``swap_max``),
                                                         surer than any of the annotated class there
``loose``          badloc (per annotated box)            the best same-class prediction over it fits
                                                         it badly (badloc score <= ``loose_max``), lies
                                                         inside it (``loose_cover``), and the box is
                                                         ``loose_area`` times its area or more
``spurious``       (none: ObjectLab reads a box with no  nothing overlaps the box by ``spurious_iou``
                   prediction near it as fine)           with ``nothing`` confidence, of any class
=================  ====================================  ==============================================

ObjectLab's similarity of two boxes is ``0.9 IoU + 0.1 exp(-0.1 centre distance)``. Its
default "confident" is 0.95, tuned for detectors whose scores are calibrated
probabilities; a YOLO model's scores for clear objects sit at 0.6-0.9, so ``confident`` is
lower here (measured in ``scripts/bench_review.py``).

Why a loose box is judged by area and not by similarity: a detector's box edges wander by a
pixel or two at its input whatever the object's size, and on objects of 12-20 px (or the thin
side of a bar) that alone is IoU 0.5-0.7, as low as a box grown 1.5x on a large object; and
a small object the model does not see leaves its "best fit" on a neighbour. A box grown
about the object still holds the model's box whole and is 2-4 times its area, while a correct
box is near 1x whatever its size or aspect: the area ratio separates them (forgiving a pixel
or two per edge first, tried for the tiniest objects, only lost grown boxes). Likewise a
small object the model is unsure of still draws a prediction of 0.03-0.2 over it, where a
box on bare background draws none: ``nothing`` is far below ``present``, and counts the
predictions under ``min_score`` too. Both were tuned on seeds of ``scripts/bench_review.py``
that docs/review.md does not report.

A task's quality is ObjectLab's image score (a weighted geometric mean of each kind's
pooled box scores, pooled by cleanlab's softmin), with ``spurious`` as a fourth, equal term:
0..1, lower is more likely mislabeled. Tasks are ordered by ``Verdict.rank`` instead: the
surest flag's own evidence, scaled by its kind's threshold, so one clear error is not
buried under a task whose four pooled kinds are each a little low.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..formats.overlap import box_iou
from ..training.scoring import Image

KINDS = ("missed", "spurious", "wrong_class", "loose")
DESCRIPTION = {"missed": "missed object", "spurious": "box where there is nothing",
               "wrong_class": "wrong class", "loose": "loose box"}


@dataclass(frozen=True)
class Rules:
    """The thresholds of the flags; each the reason beside it."""

    confident: float = 0.5  # cleanlab's high_probability_threshold: a prediction this sure is an object
    present: float = 0.2  # cleanlab's low_probability_threshold: below it a prediction locates nothing
    swap_max: float = 0.5  # swap score = 1 - similarity to the other-class prediction: <= 0.5 is IoU >~ 0.5
    loose_max: float = 0.75  # badloc score = similarity to the best same-class fit: tight boxes score 0.85+
    loose_area: float = 1.7  # the box's area over the model's: grown 1.5x is 2.25; a correct one about 1
    loose_cover: float = 0.9  # share of the model's box inside the annotated one: a grown box holds it whole
    nothing: float = 0.03  # a box no prediction this sure overlaps is on nothing (a faint object draws 0.03-0.2)
    spurious_iou: float = 0.1  # a prediction overlapping a box this much is "something there"
    min_score: float = 0.05  # predictions below are dropped before scoring: noise, and slow (O(boxes^2))


@dataclass(frozen=True)
class Flag:
    """One probable error on an image: which kind, how sure, where."""

    kind: str
    score: float  # the box's score for its kind, 0..1: lower is surer
    box: tuple[float, float, float, float]  # pixels: the annotated box, the model's box for ``missed``
    label: int  # its class: the annotated one, the model's for ``missed``
    model_label: int | None = None  # the class the model sees there (``wrong_class``, ``missed``)
    confidence: float = 0.0  # the model's confidence in the box that gives the evidence
    region: int | None = None  # index of the annotated box; None for ``missed``
    rank: float = 0.0  # the evidence over its kind's threshold, 0..1: lower is surer, comparable across kinds


@dataclass(frozen=True)
class Verdict:
    """One image: its quality (0..1, lower is worse), its flags, and each kind's pooled score behind the quality."""

    quality: float
    flags: tuple[Flag, ...]
    parts: tuple[tuple[str, float], ...] = ()  # (kind, cleanlab-pooled box score) for ``quality``

    @property
    def rank(self) -> float:
        """The review's order, lower first: the surest flag's rank (0..1); unflagged, 1 + quality."""
        return min((f.rank for f in self.flags), default=1.0 + self.quality)

    def without(self, kind: str) -> Verdict:
        """The verdict with ``kind`` ignored: no flags of it, the quality from the other kinds."""
        parts = tuple((k, v) for k, v in self.parts if k != kind)
        return Verdict(quality(dict(parts)), tuple(f for f in self.flags if f.kind != kind), parts)


def quality(parts: dict[str, float]) -> float:
    """ObjectLab's image score: the geometric mean of the kinds' pooled scores (equal weights)."""
    if not parts:
        return 1.0
    return round(math.exp(sum(math.log(1e-100 + v) for v in parts.values()) / len(parts)), 6)


def cleanlab_inputs(images: Sequence[Image], classes: int, min_score: float
                    ) -> tuple[list[dict[str, np.ndarray]], list[list[np.ndarray]]]:
    """(labels, predictions) in cleanlab's format: xyxy pixel boxes; per class an (M, 5) array with the score."""
    labels, predictions = [], []
    for image in images:
        labels.append({"bboxes": np.array([t.box for t in image.truth], float).reshape(-1, 4),
                       "labels": np.array([t.label for t in image.truth], int)})
        per_class = [[] for _ in range(classes)]
        for found in image.found:
            if found.score >= min_score and 0 <= found.label < classes:
                per_class[found.label].append([*found.box, found.score])
        predictions.append([np.array(rows, float).reshape(-1, 5) for rows in per_class])
    return labels, predictions


def review(images: Sequence[Image], classes: int, rules: Rules = Rules()) -> list[Verdict]:
    """A verdict per image: cleanlab's per-box scores, our thresholds, ObjectLab's image score."""
    from cleanlab.object_detection import rank

    if not images:
        return []
    labels, predictions = cleanlab_inputs(images, classes, rules.min_score)
    overlooked = rank.compute_overlooked_box_scores(labels=labels, predictions=predictions,
                                                    high_probability_threshold=rules.confident)
    badloc = rank.compute_badloc_box_scores(labels=labels, predictions=predictions,
                                            low_probability_threshold=rules.present)
    swap = rank.compute_swap_box_scores(labels=labels, predictions=predictions,
                                        high_probability_threshold=rules.confident)
    _, faint = cleanlab_inputs(images, classes, 0.0)  # below min_score too: a faint object is still something
    spurious = [evidence(label["bboxes"], prediction, rules.spurious_iou) for label, prediction in zip(labels, faint)]
    pooled = {kind: rank.pool_box_scores_per_image([np.asarray(s, float) for s in scores])
              for kind, scores in zip(("missed", "wrong_class", "loose", "spurious"),
                                      (overlooked, swap, badloc, spurious))}
    out = []
    for i, (label, prediction) in enumerate(zip(labels, predictions)):
        parts = {kind: float(pooled[kind][i]) for kind in KINDS}
        flags = (missed_flags(overlooked[i], prediction, rules) + spurious_flags(spurious[i], label, rules)
                 + swap_flags(swap[i], label, prediction, rules)
                 + loose_flags(badloc[i], label, prediction, rules))
        out.append(Verdict(quality(parts), tuple(flags), tuple(parts.items())))
    return out


def evidence(boxes: np.ndarray, prediction: list[np.ndarray], min_iou: float) -> np.ndarray:
    """Per annotated box: the highest confidence of any prediction overlapping it by ``min_iou`` (0: none)."""
    found = np.concatenate(prediction) if prediction else np.zeros((0, 5))
    if not len(boxes) or not len(found):
        return np.zeros(len(boxes))
    overlaps = box_iou(boxes, found[:, :4]) >= min_iou
    return np.where(overlaps, found[None, :, 4], 0.0).max(axis=1)


def _predicted(prediction: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rows x1 y1 x2 y2 score, class of each row) in cleanlab's order: class by class."""
    rows = np.concatenate(prediction) if prediction else np.zeros((0, 5))
    return rows, np.concatenate([np.full(len(p), k) for k, p in enumerate(prediction)]) if prediction else np.zeros(0)


def missed_flags(scores: np.ndarray, prediction: list[np.ndarray], rules: Rules) -> list[Flag]:
    """A confident prediction that overlaps no annotated box (cleanlab scores it; NaN: not a candidate)."""
    rows, classes = _predicted(prediction)
    return [Flag("missed", float(score), _box(rows[m]), int(classes[m]), int(classes[m]), float(rows[m, 4]),
                 rank=_share(1.0 - rows[m, 4], 1.0 - rules.confident))
            for m, score in enumerate(scores) if not np.isnan(score)]


def spurious_flags(scores: np.ndarray, label: dict[str, np.ndarray], rules: Rules) -> list[Flag]:
    """An annotated box no prediction of any class believes in."""
    return [Flag("spurious", float(score), _box(label["bboxes"][j]), int(label["labels"][j]), None, float(score), j,
                 _share(score, rules.nothing))
            for j, score in enumerate(scores) if score < rules.nothing]


def swap_flags(scores: np.ndarray, label: dict[str, np.ndarray], prediction: list[np.ndarray],
               rules: Rules) -> list[Flag]:
    """An annotated box covered by a confident prediction of another class: that class is the suggestion."""
    rows, classes = _predicted(prediction)
    flags = []
    for j, score in enumerate(scores):
        if score > rules.swap_max:
            continue
        other = (classes != label["labels"][j]) & (rows[:, 4] > rules.confident)
        if not other.any():  # cleanlab's penalty for two annotated boxes of different classes on one object
            continue
        ious = box_iou(label["bboxes"][j:j + 1], rows[:, :4])[0]
        best = int(np.argmax(np.where(other, ious, -1.0)))
        same = (classes == label["labels"][j]) & (ious >= rules.spurious_iou)
        if same.any() and rows[same, 4].max() >= rows[best, 4]:
            continue  # class-aware NMS keeps both classes on one object: the model prefers the annotated one
        flags.append(Flag("wrong_class", float(score), _box(label["bboxes"][j]), int(label["labels"][j]),
                          int(classes[best]), float(rows[best, 4]), j, _share(score, rules.swap_max)))
    return flags


def loose_flags(scores: np.ndarray, label: dict[str, np.ndarray], prediction: list[np.ndarray],
                rules: Rules) -> list[Flag]:
    """An annotated box whose best-fitting same-class prediction fits it badly (badloc 1.0: no candidate),
    lies inside it, and is ``loose_area`` times smaller: a box grown about its object, whatever its size."""
    rows, classes = _predicted(prediction)
    flags = []
    for j, score in enumerate(scores):
        if score > rules.loose_max:
            continue
        same = (classes == label["labels"][j]) & (rows[:, 4] > rules.present)
        ious = box_iou(label["bboxes"][j:j + 1], rows[:, :4])[0]
        if not same.any():
            continue
        best = int(np.argmax(np.where(same, ious, -1.0)))
        grown, cover = growth(label["bboxes"][j], rows[best, :4])
        if grown < rules.loose_area or cover < rules.loose_cover:
            continue
        flags.append(Flag("loose", float(score), _box(label["bboxes"][j]), int(label["labels"][j]),
                          int(classes[best]), float(rows[best, 4]), j, _share(rules.loose_area, grown)))
    return flags


def growth(box: np.ndarray, fit: np.ndarray) -> tuple[float, float]:
    """(area of ``box`` over ``fit``'s, share of ``fit``'s area inside ``box``): a grown box is (2-4, 1)."""
    area = float(np.prod(np.clip(fit[2:4] - fit[:2], 1e-9, None)))
    inside = float(np.prod(np.clip(np.minimum(box[2:4], fit[2:4]) - np.maximum(box[:2], fit[:2]), 0, None)))
    return float(np.prod(np.clip(box[2:4] - box[:2], 0, None))) / area, inside / area


def _share(evidence: float, threshold: float) -> float:
    """A flag's evidence as a share of its kind's threshold, 0..1: what ranks flags of different kinds."""
    return float(min(max(evidence / max(threshold, 1e-9), 0.0), 1.0))


def _box(row: np.ndarray) -> tuple[float, float, float, float]:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
