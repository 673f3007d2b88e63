"""Bytes of decoded pixels one worker process may hold at once (DECODE_BUDGET_MB).

A 300 kB PNG can decode to a 100 Mpx image (about 300 MB as BGR, three times that while
decoding); eight of them in one /predict once took a worker's memory up by 10 GB. So every
image decode first reserves what decoding costs (``decode_cost``, measured), keeps the size of
its array while the array waits for inference, and gives it back as soon as the detections are
made. A request that finds the budget taken waits; an image that alone needs more than the
whole budget is refused with its own error.

Deadlock-free by two rules: a request's images are granted in task order (``Claimant``), so
what a request holds is always older than what it waits for and is consumed first; and the
request gives back what it holds before it waits for its next image (``serving.backend._fetch_groups``).
"""

from __future__ import annotations

import threading

# Peak bytes per pixel while decoding, measured on flat 6000x6000 PNGs (tests/media/test_decode_budget.py):
# PIL's RGBX buffer (4) + numpy's view of it (3) before the PIL image is dropped; the BGR array (3) is
# what is held afterwards. 16/32-bit grayscale is scaled in float64 (8 per value, twice) first.
BYTES_PER_PIXEL = {"held": 3, "decode": 8, "wide": 24}


def decode_cost(width: int, height: int, mode: str) -> int:
    """Bytes that decoding an image of this size and PIL mode may take at its peak."""
    wide = mode.startswith("I") or mode == "F"
    return width * height * BYTES_PER_PIXEL["wide" if wide else "decode"]


class BudgetExceeded(ValueError):
    """One image needs more than the whole budget: it can never be decoded here."""


class DecodeBudget:
    """A byte count shared by every request of one process; ``Claimant`` asks for it in order."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.held = 0
        self.peak = 0  # the most ever held: what tests and the benchmark read
        self._changed = threading.Condition()

    def claimant(self) -> Claimant:
        """One request's turn-taker: its images are granted in the order it numbers them."""
        return Claimant(self)

    def _take(self, claimant: Claimant, turn: int, nbytes: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: claimant.next_turn == turn and self.held + nbytes <= self.limit)
            self.held += nbytes
            self.peak = max(self.peak, self.held)
            claimant._advance(turn)
            self._changed.notify_all()

    def _give(self, nbytes: int) -> None:
        with self._changed:
            self.held -= nbytes
            self._changed.notify_all()


class Claimant:
    """Turns 0, 1, 2, ... of one request; a turn that never reserves (failed download) is skipped."""

    def __init__(self, budget: DecodeBudget) -> None:
        self.budget = budget
        self.next_turn = 0
        self._skipped: set[int] = set()

    def reserve(self, turn: int, nbytes: int, what: str) -> Lease:
        """Wait for this turn and for ``nbytes`` to be free; BudgetExceeded if they never can be."""
        if nbytes > self.budget.limit:
            self.skip(turn)
            limit = self.budget.limit // 2**20
            raise BudgetExceeded(f"{what} needs about {nbytes / 2**20:.0f} MB to decode, more than "
                                 f"DECODE_BUDGET_MB={limit}: downscale it or raise DECODE_BUDGET_MB")
        self.budget._take(self, turn, nbytes)
        return Lease(self.budget, nbytes)

    def skip(self, turn: int) -> None:
        """This turn reserves nothing (its image failed before decoding): later turns need not wait for it."""
        with self.budget._changed:
            self._advance(turn)
            self.budget._changed.notify_all()

    def _advance(self, turn: int) -> None:  # under the budget's lock
        self._skipped.add(turn)
        while self.next_turn in self._skipped:
            self._skipped.discard(self.next_turn)
            self.next_turn += 1


class Lease:
    """Bytes held for one image: shrunk to its array once decoded, given back once it is not needed."""

    def __init__(self, budget: DecodeBudget, nbytes: int) -> None:
        self.budget, self.nbytes = budget, nbytes
        self._lock = threading.Lock()

    def shrink(self, nbytes: int) -> None:
        with self._lock:
            if nbytes < self.nbytes:
                self.budget._give(self.nbytes - nbytes)
                self.nbytes = nbytes

    def release(self) -> None:
        """Idempotent: the array is no longer needed."""
        self.shrink(0)
