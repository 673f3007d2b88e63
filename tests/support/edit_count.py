"""How many edits turn a pre-label into the truth: the cost a simulated annotator pays per image.

Matching is Hungarian (``scipy.optimize.linear_sum_assignment``), class-agnostic, on the edits
each pairing costs: the pairing with the fewest edits in total, the larger IoU breaking ties,
as an annotator takes the cheapest correction. A pair under ``MATCH_IOU`` is no pair (the
annotator deletes that box and draws the object anew: 2 edits). Greedy matching by IoU can pair
a box with its crowded neighbour and charge a move and two relabels where two moves would do
(``tests/test_edit_count.py``); the minimum cannot.

Per image, with ``pairs`` the matched (pre-label, truth) boxes:

- **deleted**: a pre-label paired with nothing (a box on nothing, or a duplicate);
- **drawn**: a truth paired with nothing (a missed object);
- **moved**: a pair whose IoU is under ``KEEP_IOU`` (0.9): the box is moved or resized;
- **relabeled**: a pair whose labels differ (a pair can be both moved and relabeled);
- a pre-label paired at IoU >= 0.9 with the right label costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

KEEP_IOU = 0.9  # a box this close to the truth is kept as it is
MATCH_IOU = 0.3  # under this a box is not worth moving: delete it, draw the object


@dataclass(frozen=True)
class Box:
    """A labeled box in pixels (x1, y1, x2, y2)."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Edits:
    """Edits one image needs; ``total`` is what the benchmark reports per image."""

    deleted: int = 0
    drawn: int = 0
    moved: int = 0
    relabeled: int = 0
    kept: int = 0  # pre-labels kept as they are (cost nothing; counted for the time model's checks)

    @property
    def total(self) -> int:
        return self.deleted + self.drawn + self.moved + self.relabeled

    def __add__(self, other: Edits) -> Edits:
        return Edits(self.deleted + other.deleted, self.drawn + other.drawn, self.moved + other.moved,
                     self.relabeled + other.relabeled, self.kept + other.kept)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def count_edits(predicted: list[Box], truth: list[Box], keep_iou: float = KEEP_IOU,
                match_iou: float = MATCH_IOU) -> Edits:
    """The edits that correct ``predicted`` into ``truth`` (see the module docstring for the rules)."""
    if not predicted or not truth:
        return Edits(deleted=len(predicted), drawn=len(truth))
    overlap = np.array([[iou(p, t) for t in truth] for p in predicted])
    relabel = np.array([[float(p.label != t.label) for t in truth] for p in predicted])
    pair_cost = (overlap < keep_iou) + relabel - 1e-3 * overlap  # edits, the larger IoU first among equals
    rows, cols = linear_sum_assignment(np.where(overlap >= match_iou, pair_cost, 2.0))  # 2: delete and draw
    pairs = [(r, c) for r, c in zip(rows, cols) if overlap[r, c] >= match_iou]
    moved = sum(1 for r, c in pairs if overlap[r, c] < keep_iou)
    relabeled = sum(1 for r, c in pairs if predicted[r].label != truth[c].label)
    kept = sum(1 for r, c in pairs if overlap[r, c] >= keep_iou and predicted[r].label == truth[c].label)
    return Edits(deleted=len(predicted) - len(pairs), drawn=len(truth) - len(pairs), moved=moved,
                 relabeled=relabeled, kept=kept)
