"""Whether two engines found the same objects: the bar an optimised runtime must clear.

Same objects means: every detection of one has a partner in the other with the same
class, box IoU >= 0.99 and score within 0.01. A detection whose score lies within
the score tolerance of the confidence threshold may be missing on the other side,
because a rounding difference legitimately moves it across the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

from .convert import Detection

MIN_IOU = 0.99
MAX_SCORE_DIFF = 0.01


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _partner(found: Detection, others: Sequence[Detection]) -> bool:
    return any(
        other.class_id == found.class_id
        and abs(other.score - found.score) <= MAX_SCORE_DIFF
        and iou(found.box, other.box) >= MIN_IOU
        for other in others
    )


def mismatches(reference: Sequence[Detection], candidate: Sequence[Detection], conf: float) -> list[str]:
    """Why ``candidate`` differs from ``reference`` on one image; empty when they agree."""
    problems = []
    for side, ours, theirs in (("reference", reference, candidate), ("candidate", candidate, reference)):
        for found in ours:
            if found.score < conf + MAX_SCORE_DIFF:
                continue  # may sit on the other side of the threshold there
            if not _partner(found, theirs):
                problems.append(f"{side} class {found.class_id} score {found.score:.3f} at "
                                f"{tuple(round(v, 1) for v in found.box)} has no partner")
    return problems


def same_detections(reference: Sequence[Sequence[Detection]], candidate: Sequence[Sequence[Detection]],
                    conf: float) -> list[str]:
    """Mismatches over many images, each prefixed with its image index."""
    if len(reference) != len(candidate):
        return [f"{len(reference)} images in the reference, {len(candidate)} in the candidate"]
    return [f"image {i}: {problem}" for i, (ref, cand) in enumerate(zip(reference, candidate))
            for problem in mismatches(ref, cand, conf)]
