"""The YOLO fallback's choice: which detection a click or a drawn box means."""

from __future__ import annotations

import math

import pytest

from yolo_backend.assist import choose
from yolo_backend.formats.convert import Detection


def circle(cx: float, cy: float, r: float, score: float = 0.9, cls: int = 0) -> Detection:
    outline = tuple((cx + r * math.cos(2 * math.pi * k / 40), cy + r * math.sin(2 * math.pi * k / 40))
                    for k in range(40))
    return Detection(cls, score, (cx - r, cy - r, cx + r, cy + r), outline)


def square(x1: float, y1: float, x2: float, y2: float, score: float = 0.9, cls: int = 0) -> Detection:
    return Detection(cls, score, (x1, y1, x2, y2))


def test_a_click_on_an_object_picks_it() -> None:
    left, right = circle(50, 50, 20), circle(150, 50, 20)
    assert choose.at_points([left, right], [(55, 45, True)]) is left
    assert choose.at_points([left, right], [(150, 60, True)]) is right


def test_a_click_on_background_picks_nothing_not_the_nearest_object() -> None:
    left = circle(50, 50, 20)
    assert choose.at_points([left], [(75, 50, True)]) is None
    # inside the circle's box but outside its mask (a corner): background too
    assert choose.at_points([left], [(33, 33, True)]) is None
    assert choose.at_points([], [(50, 50, True)]) is None


def test_a_box_only_detection_holds_what_its_box_holds() -> None:
    only_box = square(10, 10, 40, 40)
    assert choose.at_points([only_box], [(12, 38, True)]) is only_box


def test_of_overlapping_detections_the_best_scored_then_the_smaller_wins() -> None:
    big, small = square(0, 0, 100, 100, score=0.5), square(40, 40, 60, 60, score=0.8)
    assert choose.at_points([big, small], [(50, 50, True)]) is small
    assert choose.at_points([big, small], [(10, 10, True)]) is big
    tie_big, tie_small = square(0, 0, 100, 100, score=0.8), square(40, 40, 60, 60, score=0.8)
    assert choose.at_points([tie_big, tie_small], [(50, 50, True)]) is tie_small


def test_a_negative_point_rules_out_what_holds_it_and_all_positive_points_must_lie_on_the_object() -> None:
    big, small = square(0, 0, 100, 100, score=0.5), square(40, 40, 60, 60, score=0.8)
    assert choose.at_points([big, small], [(50, 50, True), (5, 5, False)]) is small
    assert choose.at_points([big, small], [(50, 50, True), (90, 90, True)]) is big
    assert choose.at_points([big, small], [(50, 50, False)]) is None  # no positive point: nothing asked


def test_a_loose_box_picks_the_object_inside_it_not_a_neighbour_or_an_enclosing_one() -> None:
    inside = square(30, 30, 70, 70, score=0.6)
    neighbour = square(75, 30, 120, 70, score=0.95)  # mostly outside the drawn box
    enclosing = square(0, 0, 200, 200, score=0.9)
    piece = square(40, 40, 50, 50, score=0.9)  # inside, but fills little of the box
    assert choose.in_box([neighbour, enclosing, piece, inside], (20, 20, 80, 80)) is inside


def test_a_box_around_nothing_picks_nothing() -> None:
    assert choose.in_box([square(100, 100, 150, 150)], (0, 0, 50, 50)) is None
    assert choose.in_box([], (0, 0, 50, 50)) is None


@pytest.mark.parametrize("box,size", [((100, 100, 140, 130), 64), ((0, 0, 20, 20), 128), ((900, 700, 1000, 760), 256),
                                      ((10, 10, 790, 590), 640)])
def test_the_crop_holds_the_box_at_least_at_the_model_input_size_and_stays_in_the_image(box, size) -> None:
    width, height = 1000, 760
    x0, y0, x1, y1 = choose.crop(box, width, height, size)
    assert 0 <= x0 <= box[0] and 0 <= y0 <= box[1] and box[2] <= x1 <= width and box[3] <= y1 <= height
    assert x1 - x0 >= min(size, width) - 1 and y1 - y0 >= min(size, height) - 1
    assert x1 - x0 >= min(2 * (box[2] - box[0]), width) - 1
