"""The review's flag rules on hand-made images (cleanlab's real scores, no model), and its pure helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from yolo_backend.cli import main
from yolo_backend.review import flags
from yolo_backend.review.folds import Plan, _from_json, _to_json, assign, doubtful
from yolo_backend.review.project import Review, describe, prediction, review_version, supported_control
from yolo_backend.training.examples import Example
from yolo_backend.training.scoring import Found, Image, Truth

SQUARE, CIRCLE = 0, 1
A, B = (10.0, 10.0, 60.0, 60.0), (100.0, 100.0, 150.0, 150.0)  # two objects, far apart
SEEN = (Found(SQUARE, 0.9, (11.0, 11.0, 59.0, 61.0)), Found(CIRCLE, 0.85, (101.0, 99.0, 150.0, 151.0)))
NOISE = (Found(CIRCLE, 0.03, (200.0, 10.0, 230.0, 40.0)),)  # what a detector also says at a low threshold


def verdict(found: tuple[Found, ...], truth: tuple[Truth, ...]) -> flags.Verdict:
    """The image judged beside a clean one: cleanlab's minimum similarity is taken over the dataset."""
    clean = Image(SEEN + NOISE, (Truth(SQUARE, A), Truth(CIRCLE, B)))
    return flags.review([Image(found + NOISE, truth), clean], 2)[0]


def kinds_of(v: flags.Verdict) -> list[str]:
    return [f.kind for f in v.flags]


def test_a_clean_image_has_no_flag_and_a_high_quality() -> None:
    v = verdict(SEEN, (Truth(SQUARE, A), Truth(CIRCLE, B)))
    assert v.flags == () and v.quality > 0.9


def test_a_missing_box_is_a_missed_object_drawn_where_the_model_sees_it() -> None:
    v = verdict(SEEN, (Truth(SQUARE, A),))
    [flag] = v.flags
    assert (flag.kind, flag.box, flag.label, flag.region) == ("missed", SEEN[1].box, CIRCLE, None)
    assert flag.confidence == pytest.approx(0.85)


def test_an_unsure_prediction_is_no_missed_object() -> None:
    unsure = (SEEN[0], Found(CIRCLE, 0.3, SEEN[1].box))  # below Rules.confident
    assert verdict(unsure, (Truth(SQUARE, A),)).flags == ()


def test_a_box_on_background_is_a_box_where_there_is_nothing() -> None:
    extra = (170.0, 170.0, 220.0, 220.0)
    v = verdict(SEEN, (Truth(SQUARE, A), Truth(CIRCLE, B), Truth(SQUARE, extra)))
    [flag] = v.flags
    assert (flag.kind, flag.box, flag.region) == ("spurious", extra, 2)


def test_a_box_with_the_other_class_is_a_wrong_class_naming_the_models() -> None:
    v = verdict(SEEN, (Truth(SQUARE, A), Truth(SQUARE, B)))
    [flag] = v.flags
    assert (flag.kind, flag.label, flag.model_label, flag.region) == ("wrong_class", SQUARE, CIRCLE, 1)
    assert flag.score <= flags.Rules().swap_max


def test_a_box_seen_as_both_classes_its_own_more_surely_is_no_wrong_class() -> None:
    both = (*SEEN, Found(SQUARE, 0.7, (100.0, 101.0, 149.0, 150.0)))  # class-aware NMS keeps both on one object
    assert verdict(both, (Truth(SQUARE, A), Truth(CIRCLE, B))).flags == ()
    assert kinds_of(verdict(both, (Truth(SQUARE, A), Truth(SQUARE, B)))) == ["wrong_class"]  # 0.85 circle > 0.7


def test_a_box_much_larger_than_the_object_is_loose() -> None:
    loose = (0.0, 0.0, 80.0, 85.0)
    v = verdict(SEEN, (Truth(SQUARE, loose), Truth(CIRCLE, B)))
    [flag] = v.flags
    assert (flag.kind, flag.box, flag.region) == ("loose", loose, 0)


def test_a_slightly_offset_box_is_not_loose() -> None:
    close = (12.0, 9.0, 62.0, 59.0)  # a few pixels off: what annotators do
    assert verdict(SEEN, (Truth(SQUARE, close), Truth(CIRCLE, B))).flags == ()


BAR, DOT = (100.0, 180.0, 140.0, 192.0), (180.0, 20.0, 192.0, 32.0)  # 40 x 12 and 12 x 12 px at the model's input


def today() -> flags.Rules:
    """The rules before issue 22's fault 14: ObjectLab's similarity alone for a loose box, ``present`` for nothing."""
    return flags.Rules(loose_area=0.0, loose_cover=0.0, nothing=0.2)


def test_a_small_or_thin_box_the_model_fits_two_pixels_off_is_not_loose() -> None:
    """The model's edges wander a pixel or two whatever the size: on 12 px that alone is IoU 0.6-0.7."""
    found = (*SEEN, Found(SQUARE, 0.8, (101.0, 182.0, 139.0, 194.0)), Found(CIRCLE, 0.8, (182.0, 22.0, 194.0, 34.0)))
    truth = (Truth(SQUARE, A), Truth(CIRCLE, B), Truth(SQUARE, BAR), Truth(CIRCLE, DOT))
    assert verdict(found, truth).flags == ()
    clean = Image(SEEN + NOISE, (Truth(SQUARE, A), Truth(CIRCLE, B)))
    assert kinds_of(flags.review([Image(found + NOISE, truth), clean], 2, today())[0]) == ["loose", "loose"]


def test_a_small_box_grown_half_again_is_still_loose() -> None:
    grown = (177.0, 17.0, 195.0, 35.0)  # the 12 px DOT grown 1.5x about its centre
    found = (*SEEN, Found(CIRCLE, 0.8, DOT))
    [flag] = verdict(found, (Truth(SQUARE, A), Truth(CIRCLE, B), Truth(CIRCLE, grown))).flags
    assert (flag.kind, flag.box) == ("loose", grown)


def test_a_faint_object_is_not_a_box_where_there_is_nothing() -> None:
    """A small object the model is unsure of still draws a prediction of 0.05-0.2; bare background none."""
    faint = (*SEEN, Found(SQUARE, 0.15, DOT))
    truth = (Truth(SQUARE, A), Truth(CIRCLE, B), Truth(SQUARE, DOT))
    assert verdict(faint, truth).flags == ()
    assert kinds_of(flags.review([Image(faint, truth)], 2, today())[0]) == ["spurious"]


def test_a_clear_loose_box_ranks_above_a_borderline_one_in_a_task_of_low_quality() -> None:
    """Task quality pools the kinds: a faint object (0.25) and a borderline box pull it below a clear error."""
    clear = Image(SEEN, (Truth(SQUARE, (0.0, 0.0, 75.0, 80.0)), Truth(CIRCLE, B)))  # 2.5x the model's box
    faint = (170.0, 170.0, 200.0, 200.0)
    borderline = Image((*SEEN, Found(SQUARE, 0.25, faint)),
                       (Truth(SQUARE, (3.0, 3.0, 67.0, 69.0)), Truth(CIRCLE, B), Truth(SQUARE, faint)))  # 1.76x
    verdicts = dict(zip(("clear", "borderline"), flags.review([clear, borderline], 2)))
    assert all(kinds_of(v) == ["loose"] for v in verdicts.values())
    assert verdicts["borderline"].quality < verdicts["clear"].quality  # the pooled order would put it first
    review = Review("review-4fold-abc", supported_control(CONFIG), ["square", "circle"], verdicts)
    assert [task for task, _ in review.flagged()] == ["clear", "borderline"]


def test_every_kind_of_error_ranks_below_the_clean_image() -> None:
    clean = Image(SEEN, (Truth(SQUARE, A), Truth(CIRCLE, B)))
    wrong = [Image(SEEN, (Truth(SQUARE, A),)),
             Image(SEEN, (Truth(SQUARE, A), Truth(CIRCLE, B), Truth(SQUARE, (170.0, 170.0, 220.0, 220.0)))),
             Image(SEEN, (Truth(SQUARE, A), Truth(SQUARE, B))),
             Image(SEEN, (Truth(SQUARE, (0.0, 0.0, 80.0, 85.0)), Truth(CIRCLE, B)))]
    verdicts = flags.review([clean, *wrong], 2)
    assert [kinds_of(v) for v in verdicts] == [[], ["missed"], ["spurious"], ["wrong_class"], ["loose"]]
    assert all(v.quality < verdicts[0].quality for v in verdicts[1:])


def test_a_verdict_without_a_kind_drops_its_flags_and_its_part_of_the_quality() -> None:
    swapped = verdict(SEEN, (Truth(SQUARE, A), Truth(SQUARE, B)))
    kept = swapped.without("wrong_class")
    assert kept.flags == () and kept.quality > 0.9 > swapped.quality
    assert [k for k, _ in kept.parts] == ["missed", "spurious", "loose"]


def test_an_empty_image_and_an_image_without_predictions_are_judged() -> None:
    nothing, unseen = flags.review([Image((), ()), Image((), (Truth(SQUARE, A),))], 2)
    assert nothing.flags == () and nothing.quality == pytest.approx(1.0)
    assert kinds_of(unseen) == ["spurious"]  # an annotated box the model sees nothing at


def test_the_cleanlab_inputs_are_per_class_arrays_of_five_columns() -> None:
    labels, predictions = flags.cleanlab_inputs([Image(SEEN + NOISE, (Truth(CIRCLE, B),))], 2, min_score=0.05)
    assert labels[0]["bboxes"].shape == (1, 4) and list(labels[0]["labels"]) == [CIRCLE]
    assert [p.shape for p in predictions[0]] == [(1, 5), (1, 5)]  # the 0.03 noise dropped
    assert predictions[0][1][0, 4] == pytest.approx(0.85)


# -- folds, versions, what goes back to Label Studio ---------------------------------------------------
def examples(count: int) -> list[Example]:
    return [Example(task_id, Path(f"{task_id}.jpg"), (f"0 0.5 0.5 0.{task_id % 9 + 1} 0.2",))
            for task_id in range(1, count + 1)]


def test_folds_cover_every_image_once_in_equal_parts_whatever_the_order() -> None:
    folds = assign(examples(41), 4)
    ids = [e.task_id for fold in folds for e in fold]
    assert sorted(ids) == list(range(1, 42)) and sorted(len(f) for f in folds) == [10, 10, 10, 11]
    again = assign(list(reversed(examples(41))), 4)
    assert [[e.task_id for e in f] for f in again] == [[e.task_id for e in f] for f in folds]


def test_a_fold_flagging_far_more_than_the_others_is_doubted_for_that_kind_only() -> None:
    flagged = [{"wrong_class": 2, "loose": 3}, {"wrong_class": 38, "loose": 2}, {"wrong_class": 3}, {"loose": 1}]
    assert doubtful(flagged, [190, 190, 190, 190]) == [(1, "wrong_class", pytest.approx(0.2))]
    assert doubtful([{"missed": 30}, {"missed": 25}, {"missed": 28}], [190, 190, 190]) == []  # alike: the labels


def test_too_few_images_or_folds_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="annotate at least 8"):
        Plan(folds=4).check(7)
    with pytest.raises(ValueError, match="at least 2"):
        Plan(folds=1).check(100)


def test_the_version_changes_with_a_label_row_and_not_with_the_order() -> None:
    plan = Plan()
    first = review_version(examples(6), plan)
    assert first.startswith("review-4fold-") and review_version(list(reversed(examples(6))), plan) == first
    changed = examples(6)
    changed[2] = Example(3, Path("3.jpg"), ("1 0.5 0.5 0.4 0.2",))
    assert review_version(changed, plan) != first
    assert review_version(examples(6), Plan(epochs=11)) != first


def test_kept_predictions_read_back_as_they_were_written() -> None:
    image = Image((Found(1, 0.5, (1.0, 2.0, 3.0, 4.0)), Found(0, 0.001, (0.0, 0.0, 1.0, 1.0))), (Truth(0, A),))
    back = _from_json(_to_json(image))
    assert back.found == image.found[:1] and back.truth == image.truth  # scores under 0.01 are not kept


CONFIG = ('<View><Image name="img" value="$image"/><RectangleLabels name="boxes" toName="img">'
          '<Label value="square"/><Label value="circle"/></RectangleLabels></View>')


def test_a_flagged_task_becomes_a_prediction_of_its_disputed_regions_scored_by_rank() -> None:
    spec = supported_control(CONFIG)
    review = Review("review-4fold-abc", spec, ["square", "circle"], sizes={7: (200, 100)})
    flag = flags.Flag("wrong_class", 0.1, (20.0, 10.0, 70.0, 60.0), SQUARE, CIRCLE, 0.88, 0, rank=0.2)
    stored = prediction(7, flags.Verdict(0.42, (flag,)), review)
    assert (stored["task"], stored["model_version"], stored["score"]) == (7, "review-4fold-abc", 0.2)
    [region] = stored["result"]
    assert (region["from_name"], region["to_name"], region["type"]) == ("boxes", "img", "rectanglelabels")
    assert region["value"] == {"x": 10.0, "y": 10.0, "width": 25.0, "height": 50.0, "rotation": 0,
                               "rectanglelabels": ["square"]}
    assert region["meta"]["text"] == [describe(flag, review.labels)]
    assert describe(flag, review.labels).startswith("wrong class: annotated square, the model sees a circle")


@pytest.mark.parametrize("config, reason", [
    ('<View><Image name="i" value="$image"/><PolygonLabels name="p" toName="i"><Label value="a"/>'
     '</PolygonLabels></View>', "is polygonlabels"),
    ('<View><Video name="v" value="$video"/><VideoRectangle name="b" toName="v"/><Labels name="l" toName="v">'
     '<Label value="a"/></Labels></View>', "on video"),
])
def test_other_controls_are_refused_with_a_message(config: str, reason: str) -> None:
    with pytest.raises(ValueError, match="review supports boxes only") as caught:
        supported_control(config)
    assert reason in str(caught.value)


def test_the_command_without_a_base_checkpoint_says_what_to_pass(tmp_path: Path, capsys) -> None:
    code = main(["review", "--project", "3", "--api-key", "k", "--start", str(tmp_path / "none.pt")])
    assert code == 2 and "pass --start PATH or set MODEL_ROOT/MODEL_PATH" in capsys.readouterr().err
