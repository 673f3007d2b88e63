"""The promotion gate's rules on hand-made cases: matching, scores, thresholds, the decision, the split."""

from __future__ import annotations

from pathlib import Path

import pytest

from yolo_backend.core.registry import Registry, ServedChanged
from yolo_backend.core.split import split
from yolo_backend.training import scoring
from yolo_backend.training.examples import Example, carve_val
from yolo_backend.training.scoring import Found, Image, Truth

BOX = (10.0, 10.0, 50.0, 50.0)
OTHER = (100.0, 100.0, 140.0, 140.0)


def test_matching_is_one_to_one() -> None:
    """Two boxes on one object: one true positive and one false one (any-partner matching gave two)."""
    image = Image((Found(0, 0.9, BOX), Found(0, 0.8, BOX)), (Truth(0, BOX),))
    assert scoring.match(image) == [True, False]
    assert scoring.counts([image], [0.5]) == scoring.Counts(tp=1, fp=1, fn=0)


def test_matching_needs_the_class_and_the_overlap() -> None:
    image = Image((Found(1, 0.9, BOX), Found(0, 0.9, (30.0, 30.0, 70.0, 70.0))), (Truth(0, BOX),))
    assert scoring.match(image) == [False, False]  # other class; IoU 0.14


def test_average_precision_of_perfect_and_empty_predictions() -> None:
    truth = (Truth(0, BOX), Truth(1, OTHER))
    perfect = [Image((Found(0, 0.9, BOX), Found(1, 0.8, OTHER)), truth)]
    assert scoring.average_precision(perfect) == pytest.approx((0.995, 0.995), abs=0.01)
    assert scoring.average_precision([Image((), truth)]) == (0.0, 0.0)


def test_a_model_that_finds_nothing_above_the_threshold_has_f1_zero() -> None:
    """The issue's second project: mAP50 0.65, yet no box above the serving threshold, no pre-labels."""
    images = [Image((Found(0, 0.2, BOX),), (Truth(0, BOX),)) for _ in range(4)]
    scores = scoring.score(images, 1, default=0.5)
    assert scores.map50 > 0.9 and scores.f1 == 0.0 and scores.f1_default == 0.0


def test_best_thresholds_separate_true_from_false_boxes_per_class() -> None:
    images = [Image((Found(0, 0.3, BOX), Found(0, 0.2, OTHER), Found(1, 0.9, OTHER)),
                    (Truth(0, BOX), Truth(1, OTHER))) for _ in range(3)]
    chosen = scoring.best_thresholds(images, 2, default=0.5)
    # label 0: midway between its true boxes' 0.3 and false boxes' 0.2; label 1 has no false box below 0.9: no
    # reason to go above the default
    assert chosen == {0: 0.25, 1: 0.5}
    at_chosen = scoring.counts(images, [chosen[0], chosen[1]])
    assert at_chosen.f1 == 1.0 and scoring.counts(images, [0.5, 0.5]).f1 == pytest.approx(2 / 3)


def test_a_chosen_threshold_keeps_a_margin_below_the_true_boxes() -> None:
    """A cut at the lowest true score hid the same object on a new image scored a hair lower (issue 12's runs)."""
    images = [Image((Found(0, 0.81, BOX), Found(0, 0.25, OTHER)), (Truth(0, BOX),)) for _ in range(3)]
    chosen = scoring.best_thresholds(images, 1, default=0.25)[0]
    assert 0.25 < chosen < 0.81
    new_image = Image((Found(0, 0.78, BOX),), (Truth(0, BOX),))
    assert scoring.counts([new_image], [chosen]).f1 == 1.0


def test_cross_fitted_thresholds_do_not_flatter_the_candidate() -> None:
    """Thresholds chosen and judged on the same images score 1.0 here; judged on the other fold, they don't."""
    lucky = Image((Found(0, 0.31, BOX),), (Truth(0, BOX),))  # a true box at 0.31 on one fold only
    unlucky = Image((Found(0, 0.31, OTHER),), (Truth(0, BOX),))  # the same score is a false box on the other
    images = [lucky, unlucky, lucky, unlucky]
    assert scoring.counts(images[0::2], [scoring.best_thresholds(images[0::2], 1, 0.5)[0]]).f1 == 1.0
    assert scoring.cross_fitted(images, 1, 0.5).f1 < 0.7


def _scores(f1: float, map50_95: float) -> scoring.Scores:
    return scoring.Scores(images=10, objects=20, map50_95=map50_95, map50=map50_95, precision=f1, recall=f1,
                          f1=f1, f1_default=f1, thresholds="default")


@pytest.mark.parametrize(("candidate", "served", "promoted"), [
    ((0.80, 0.60), (0.73, 0.55), True),   # better pre-labels by more than the margin
    ((0.74, 0.60), (0.73, 0.55), False),  # within the margin
    ((0.73, 0.55), (0.73, 0.55), False),  # a tie keeps the served model
    ((0.00, 0.40), (0.73, 0.55), False),  # the first project: F1 0.73 -> 0.00 was promoted
    ((0.90, 0.50), (0.73, 0.55), False),  # more boxes found, but looser ones
    ((0.05, 0.01), (0.00, 0.00), True),   # from nothing to something
])
def test_the_decision(candidate: tuple[float, float], served: tuple[float, float], promoted: bool) -> None:
    decision, why = scoring.decide(_scores(*candidate), _scores(*served), min_gain=0.02)
    assert decision is promoted, why
    assert "F1" in why and "holdout" in why


def _examples(n: int) -> list[Example]:
    return [Example(i, Path(f"{i}.jpg"), ()) for i in range(n)]


def test_the_holdout_has_a_floor_and_never_takes_a_task_that_trained_a_model() -> None:
    small = _examples(12)
    train, holdout = split(small, 0.2, floor=5)
    assert len(holdout) == 5 and not {e.task_id for e in train} & {e.task_id for e in holdout}
    for grown in (_examples(40), _examples(200), _examples(1000)):
        bigger_train, _ = split(grown, 0.2, floor=5)
        trained_before = {e.task_id for e in train}
        assert trained_before <= {e.task_id for e in bigger_train}, "a trained task moved into the holdout"
        train = bigger_train
    assert len(split(_examples(1000), 0.2, floor=5)[1]) == pytest.approx(200, abs=40)


def test_ultralytics_val_split_is_carved_from_training_not_the_holdout() -> None:
    train, holdout = split(_examples(30), 0.2, floor=5)
    fit, val = carve_val(train)
    assert val and fit and not {e.task_id for e in val} & {e.task_id for e in holdout}
    assert {e.task_id for e in fit} | {e.task_id for e in val} == {e.task_id for e in train}


def test_a_rollback_during_a_run_is_not_undone_by_its_publish(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"w")
    registry = Registry(tmp_path, "3")
    registry.publish(weights, ["a"], {}, "r1")
    registry.publish(weights, ["a"], {}, "r2")
    started_with = registry.load()["served"]  # a run starts and compares with p3-v2
    registry.serve("p3-v1")  # the user rolls back meanwhile
    with pytest.raises(ServedChanged, match="rollback"):
        registry.publish(weights, ["a"], {}, "r3", expect_served=started_with)
    assert registry.load()["served"] == "p3-v1" and len(registry.load()["versions"]) == 2
    assert registry.publish(weights, ["a"], {}, "r4", expect_served="p3-v1") == "p3-v3"
