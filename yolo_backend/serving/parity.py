"""Whether two engines found the same objects: the bar an optimised runtime must clear.

Same objects means: the detections pair up one to one (each detection has at most one
partner) with the same class, box IoU >= 0.99 and score within 0.01. A detection whose
score lies within the score tolerance of the confidence threshold may be missing on
the other side, because a rounding difference legitimately moves it across the
threshold. And a check that compared next to nothing proves nothing: fewer than
``MIN_COMPARED_BOXES`` matched pairs over all images is a failure in itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..formats.convert import Detection
from ..formats.overlap import box_iou

MIN_IOU = 0.99
MAX_SCORE_DIFF = 0.01
MIN_COMPARED_BOXES = 20  # matched pairs a passing check needs; two empty lists agree on nothing


@dataclass(frozen=True)
class Parity:
    """The outcome of comparing two engines: matched pairs and what did not match."""

    compared: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _alike(a: Detection, b: Detection, iou: float) -> bool:
    return a.class_id == b.class_id and abs(a.score - b.score) <= MAX_SCORE_DIFF and iou >= MIN_IOU


def _boxes(found: Sequence[Detection]) -> np.ndarray:
    return np.array([d.box for d in found], float).reshape(-1, 4)


def match(reference: Sequence[Detection], candidate: Sequence[Detection]) -> list[tuple[int, int]]:
    """Pairs ``(reference index, candidate index)``, one to one, greedy by reference score.

    Each reference detection, best score first, claims the unclaimed candidate most like it
    (highest IoU among those of the same class and a close score); a claimed candidate
    cannot be claimed again, so a duplicate on either side stays unmatched.
    """
    ious = box_iou(_boxes(reference), _boxes(candidate))  # the one box IoU (formats.overlap), every pair once
    pairs: list[tuple[int, int]] = []
    claimed: set[int] = set()
    for r in sorted(range(len(reference)), key=lambda i: -reference[i].score):
        options = [c for c in range(len(candidate))
                   if c not in claimed and _alike(reference[r], candidate[c], ious[r, c])]
        if options:
            best = max(options, key=lambda c: ious[r, c])
            claimed.add(best)
            pairs.append((r, best))
    return pairs


def _unpaired(side: str, found: Sequence[Detection], paired: set[int], conf: float) -> list[str]:
    return [f"{side} class {d.class_id} score {d.score:.3f} at {tuple(round(v, 1) for v in d.box)} has no partner"
            for i, d in enumerate(found)
            if i not in paired and d.score >= conf + MAX_SCORE_DIFF]  # near the threshold: may be missing there


def compare(reference: Sequence[Detection], candidate: Sequence[Detection], conf: float) -> tuple[int, list[str]]:
    """Matched pairs and mismatches of one image."""
    pairs = match(reference, candidate)
    problems = (_unpaired("reference", reference, {r for r, _ in pairs}, conf)
                + _unpaired("candidate", candidate, {c for _, c in pairs}, conf))
    return len(pairs), problems


def mismatches(reference: Sequence[Detection], candidate: Sequence[Detection], conf: float) -> list[str]:
    """Why ``candidate`` differs from ``reference`` on one image; empty when they agree."""
    return compare(reference, candidate, conf)[1]


def same_detections(reference: Sequence[Sequence[Detection]], candidate: Sequence[Sequence[Detection]],
                    conf: float, min_compared: int = MIN_COMPARED_BOXES) -> Parity:
    """Compare many images; fails on any mismatch and on fewer than ``min_compared`` matched boxes."""
    if len(reference) != len(candidate):
        return Parity(0, (f"{len(reference)} images in the reference, {len(candidate)} in the candidate",))
    compared, problems = 0, []
    for i, (ref, cand) in enumerate(zip(reference, candidate)):
        matched, found = compare(ref, cand, conf)
        compared += matched
        problems += [f"image {i}: {problem}" for problem in found]
    if compared < min_compared:
        problems.insert(0, f"only {compared} boxes compared (< {min_compared}) on {len(reference)} images")
    return Parity(compared, tuple(problems))
