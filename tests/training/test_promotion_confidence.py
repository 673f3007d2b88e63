"""The promotion gate judges both models alike and promotes only when the gain is sure.

Hand-made holdouts: the served version's own thresholds (chosen on this holdout) flatter
it, the bootstrap interval of hand-made per-image counts, and the decision following the
interval's lower bound rather than the point gain.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from yolo_backend.config import Settings
from yolo_backend.core import state
from yolo_backend.core.registry import Registry
from yolo_backend.core.state import RunRecord
from yolo_backend.core.status import StatusBook
from yolo_backend.training import ProjectTrainer, confidence, scoring
from yolo_backend.training.scoring import Counts, Found, Image, Truth
from yolo_backend.training.train import judge
from yolo_backend.web import status_page

BOX = (10.0, 10.0, 50.0, 50.0)
ELSEWHERE = (100.0, 100.0, 140.0, 140.0)


# (true box's score, false box's score) per image, drawn at random: no threshold truly separates them
SCORES = [(0.36, 0.42), (0.54, 0.27), (0.29, 0.21), (0.25, 0.2), (0.26, 0.41), (0.6, 0.48), (0.35, 0.36),
          (0.48, 0.33), (0.23, 0.54), (0.45, 0.24)]


def lucky_holdout() -> list[Image]:
    """One object per image, a true and a false box whose scores overlap: a threshold fitted here is luck."""
    return [Image((Found(0, true, BOX), Found(0, false, ELSEWHERE)), (Truth(0, BOX),)) for true, false in SCORES]


def test_the_served_model_is_judged_as_the_candidate_is() -> None:
    """The same predictions, as candidate and as served, score the same: a tie, not a loss."""
    settings = Settings.from_env({}, class_thresholds=True, model_score_threshold=0.5)
    found = lucky_holdout()
    as_candidate = judge(found, 1, settings, None, "mAP50-95")
    as_served = judge(found, 1, settings, None, "mAP50-95")
    assert as_candidate.f1 == as_served.f1 and as_served.thresholds.endswith("(cross-fitted on the holdout)")
    # The old asymmetry: the served version at its own thresholds, chosen on (most of) this holdout, looks better
    # than the very same model judged as a candidate, so an equal candidate was rejected.
    own = scoring.best_thresholds(found, 1, 0.5)
    in_sample = scoring.score(found, 1, 0.5, served_thresholds=[own[0]])
    assert in_sample.f1 > as_candidate.f1 + 0.2  # 0.71 vs 0.45
    assert scoring.decide(as_candidate, as_served, min_gain=0.0)[0]  # a tie promotes at PROMOTE_MIN_GAIN=0
    assert not scoring.decide(as_candidate, in_sample, min_gain=0.0)[0]


def test_the_interval_of_hand_made_counts() -> None:
    """Two images: the candidate finds the object on the first, neither on the second.

    A resample holds the first twice (gain 1), the second twice (gain 0) or one of each
    (gain 2/3): the 90 % interval spans from 0 to 1.
    """
    candidate, served = [(1, 0, 0), (0, 0, 1)], [(0, 0, 1), (0, 0, 1)]
    assert confidence.gain_interval(candidate, served) == (0.0, 1.0)
    assert confidence.gain_interval([(1, 0, 0)] * 5, [(0, 0, 1)] * 5) == (1.0, 1.0)  # every image: sure
    assert confidence.gain_interval([(1, 1, 0)] * 5, [(1, 1, 0)] * 5) == (0.0, 0.0)  # the same counts: a tie
    assert confidence.gain_interval([], []) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same images"):
        confidence.gain_interval([(1, 0, 0)], [])


def test_more_images_narrow_the_interval_around_the_same_gain() -> None:
    """The candidate finds the object on 3 images of 5 where the served model finds it on 2; then 60 of 100."""
    def holdout(n: int, found_by_candidate: int, found_by_served: int) -> tuple[list, list]:
        return ([(1, 0, 0)] * found_by_candidate + [(0, 0, 1)] * (n - found_by_candidate),
                [(1, 0, 0)] * found_by_served + [(0, 0, 1)] * (n - found_by_served))

    small_low, small_high = confidence.gain_interval(*holdout(5, 3, 2))
    big_low, big_high = confidence.gain_interval(*holdout(100, 60, 40))
    assert small_low <= 0 < big_low and big_high - big_low < (small_high - small_low) / 2
    assert confidence.gain_interval(*holdout(5, 3, 2)) == (small_low, small_high)  # a fixed seed: repeatable


def scores(per_image: list[tuple[int, int, int]], quality: float = 0.5) -> scoring.Scores:
    counts = [Counts(*c) for c in per_image]
    total = sum(counts, Counts(0, 0, 0))
    return scoring.Scores(images=len(counts), objects=total.tp + total.fn, map50_95=quality, map50=quality,
                          precision=total.precision, recall=total.recall, f1=total.f1, f1_default=total.f1,
                          thresholds="default", per_image=tuple(counts))


@pytest.mark.parametrize(("n", "promoted"), [(5, False), (100, True)])
def test_the_decision_follows_the_intervals_lower_bound(n: int, promoted: bool) -> None:
    """The same point gain (F1 0.75 vs 0.57: the object found on 60 % vs 40 % of images): noise on 5 holdout
    images, sure on 100."""
    found = 3 * n // 5
    candidate = scores([(1, 0, 0)] * found + [(0, 0, 1)] * (n - found))
    served = scores([(1, 0, 0)] * (2 * n // 5) + [(0, 0, 1)] * (n - 2 * n // 5))
    decision, why = scoring.decide(candidate, served, min_gain=0.02)
    assert decision is promoted and candidate.f1 - served.f1 == pytest.approx(0.75 - 4 / 7), why
    assert ("not surely better" in why) is not promoted and "90% interval" in why
    judged = scoring.gain(candidate, served)
    assert judged.images == n and (judged.low >= 0.02) is promoted
    assert set(judged.to_json()) == {"f1", "low", "high", "level", "resamples", "images"}


def test_versions_and_the_status_page_show_the_gain_and_its_interval(tmp_path: Path) -> None:
    """/versions?project= (``ProjectTrainer.history``) and the status page's tables, from files as a run writes them."""
    settings = Settings.from_env({}, model_root=str(tmp_path / "models"), model_dir=str(tmp_path / "state"))
    gain = scoring.Gain(0.112, 0.031, 0.204, images=40).to_json()
    weights = tmp_path / "candidate.pt"
    weights.write_bytes(b"weights")
    Registry(settings.model_dir_path, "5").publish(weights, ["square"], {"gain": gain}, "run-a", decision="better")
    unsure = RunRecord("5", run_id="run-b", metrics={"gain": {**gain, "low": -0.05}})
    StatusBook(settings.model_dir_path, "5").save(state.reject(state.start(unsure), "pre-labels not surely better"))

    history = ProjectTrainer(settings).history("5")
    assert history["details"][0]["metrics"]["gain"] == gain and history["runs"][0]["gain"]["low"] == -0.05
    view = {"versions": Registry(settings.model_dir_path, "5").load()["versions"], "served": None}
    assert "+0.112 <span class='muted'>[+0.031, +0.204] 90%</span>" in status_page._versions(view)
    assert "[-0.050, +0.204] 90%" in status_page._runs(StatusBook(settings.model_dir_path, "5").read()["history"])


def test_a_sure_gain_over_the_margin_promotes_though_its_interval_reaches_under_it() -> None:
    """The margin is asked of the gain, the certainty of the interval: a bench run at 227 labeled images was
    +0.037 (90 % interval +0.013 to +0.062) on 45 holdout images and was rejected while annotators kept a
    version trained on a fifth of the data."""
    judged = scoring.Gain(0.037, 0.013, 0.062, images=45)
    candidate, served = scores([(1, 0, 0)] * 45, quality=0.71), scores([(1, 0, 0)] * 45, quality=0.68)
    decision, why = scoring.decide(candidate, served, min_gain=0.02, judged=judged)
    assert decision, why
    unsure = scoring.Gain(0.021, -0.001, 0.045, images=45)  # over the margin, but not surely better than nothing
    decision, why = scoring.decide(candidate, served, min_gain=0.02, judged=unsure)
    assert not decision and "not surely better" in why
    small = scoring.Gain(0.015, 0.005, 0.03, images=45)  # surely better, by less than the margin
    decision, why = scoring.decide(candidate, served, min_gain=0.02, judged=small)
    assert not decision and "not better" in why
