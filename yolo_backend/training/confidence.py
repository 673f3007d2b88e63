"""How sure a promotion is: a paired bootstrap interval for the F1 gain over the holdout's images.

A holdout of TRAIN_MIN_HOLDOUT=5 images moves F1 by a tenth when one box flips, so a
point gain of PROMOTE_MIN_GAIN=0.02 says little. Both models are judged on the same
images, so each resample draws images (with replacement) and sums both models' counts on
the same draw: what the two have in common (an easy image, a hard one) cancels, and the
spread left is the candidate's difference alone.

Choices, fixed so that a decision can be repeated from the stored counts:

* ``LEVEL`` 0.90 two-sided, percentile interval: its lower bound is a one-sided 95 %
  bound, "the gain is at least this, 19 times in 20". Promotion asks that bound to clear
  PROMOTE_MIN_GAIN (``scoring.decide``).
* ``RESAMPLES`` 1000 (the 5th percentile moves by about 0.005 of F1 between seeds) and a
  fixed ``SEED``: the same holdout always gets the same interval.
* Each image's counts are taken at the thresholds it was judged at (cross-fitted ones are
  not chosen again per resample): the interval covers which images were held out, not
  how the thresholds would have moved with them, so it is a little narrow, never wide.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LEVEL = 0.90
RESAMPLES = 1000
SEED = 0
CHUNK = 100  # resamples drawn at once: memory stays resamples/CHUNK x images, whatever the holdout's size


def f1_of(counts: np.ndarray) -> np.ndarray:
    """F1 of each row of (tp, fp, fn) sums; 0 where there is nothing to count (as ``scoring.Counts.f1``)."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def gain_interval(candidate: Sequence[Sequence[int]], served: Sequence[Sequence[int]], level: float = LEVEL,
                  resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """(low, high): the ``level`` percentile interval of F1(candidate) - F1(served) over paired resamples.

    ``candidate`` and ``served`` hold one (tp, fp, fn) per holdout image, in the same image
    order. No images: (0, 0), as both F1 are 0.
    """
    a, b = np.asarray(candidate, float).reshape(-1, 3), np.asarray(served, float).reshape(-1, 3)
    if len(a) != len(b):
        raise ValueError(f"paired counts need the same images: {len(a)} for the candidate, {len(b)} served")
    if not len(a):
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    gains = []
    for start in range(0, resamples, CHUNK):
        draw = rng.integers(0, len(a), size=(min(CHUNK, resamples - start), len(a)))
        gains.append(f1_of(a[draw].sum(axis=1)) - f1_of(b[draw].sum(axis=1)))
    tail = (1 - level) / 2
    low, high = np.quantile(np.concatenate(gains), [tail, 1 - tail])
    return float(low), float(high)
