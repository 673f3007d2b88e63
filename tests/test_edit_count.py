"""The simulated annotator's edit counter on a hand-made image with one edit of each kind."""

from __future__ import annotations

from tests.support.edit_count import Box, Edits, count_edits

TRUTH = [
    Box("square", 0, 0, 40, 40),      # pre-labeled exactly: kept
    Box("circle", 100, 0, 140, 40),   # pre-labeled 20 % off: moved
    Box("triangle", 0, 100, 40, 140),  # pre-labeled in place as a square: relabeled
    Box("square", 41, 0, 81, 40),     # touching the first square, missed: drawn
]
PREDICTED = [
    Box("square", 0, 0, 40, 40),
    Box("circle", 108, 0, 148, 40),   # IoU 0.67
    Box("square", 0, 100, 40, 140),
    Box("circle", 200, 200, 230, 230),  # on nothing: deleted
]


def test_one_edit_of_each_kind() -> None:
    assert count_edits(PREDICTED, TRUTH) == Edits(deleted=1, drawn=1, moved=1, relabeled=1, kept=1)
    assert count_edits(PREDICTED, TRUTH).total == 4


def test_a_duplicate_is_deleted_and_a_far_box_is_deleted_and_drawn() -> None:
    duplicate = [Box("square", 0, 0, 40, 40), Box("square", 1, 1, 40, 40)]
    assert count_edits(duplicate, TRUTH[:1]) == Edits(deleted=1, kept=1)
    far = [Box("square", 20, 20, 60, 60)]  # IoU 0.14 with the truth: not worth moving
    assert count_edits(far, TRUTH[:1]) == Edits(deleted=1, drawn=1)


def test_overlapping_objects_are_paired_for_the_fewest_edits() -> None:
    # Greedy by IoU pairs the square pre-label with the circle (IoU 0.95: a relabel) and the circle pre-label
    # with the square (IoU 0.33: a move and a relabel), 3 edits; two moves (IoU 0.86 and 0.43) are enough.
    truth = [Box("square", 0, 0, 40, 40), Box("circle", 4, 0, 44, 40)]
    predicted = [Box("square", 3, 0, 43, 40), Box("circle", 20, 0, 60, 40)]
    assert count_edits(predicted, truth) == Edits(moved=2)


def test_nothing_predicted_draws_everything_and_nothing_true_deletes_everything() -> None:
    assert count_edits([], TRUTH) == Edits(drawn=4)
    assert count_edits(PREDICTED, []) == Edits(deleted=4)
