"""A smart tool's ``context`` as Label Studio 1.23 sends it, in every shape, read as one prompt."""

from __future__ import annotations

import pytest

from yolo_backend.assist.context import is_smart, parse
from yolo_backend.errors import BadRequest


def point(x: float, y: float, label: str | None = "receipt", positive: bool | None = True, kind: str = "keypointlabels",
          to_name: str = "image") -> dict:
    value: dict = {"x": x, "y": y, "width": 0.6}
    if label is not None:
        value[kind] = [label]
    region = {"id": f"p{x}", "type": kind, "from_name": "click", "to_name": to_name, "original_width": 640,
              "original_height": 480, "image_rotation": 0, "origin": "manual", "value": value}
    if positive is not None:
        region["is_positive"] = positive
    return region


def box(x: float, y: float, w: float, h: float, rotation: float = 0, label: str | None = "receipt",
        kind: str = "rectanglelabels") -> dict:
    value: dict = {"x": x, "y": y, "width": w, "height": h, "rotation": rotation}
    if label is not None:
        value[kind] = [label]
    return {"id": "b", "type": kind, "from_name": "box", "to_name": "image", "original_width": 640,
            "original_height": 480, "value": value}


@pytest.mark.parametrize("context", [None, {}, [], "x", {"result": []}, {"result": None},
                                     {"result": [{"type": "choices", "value": {"choices": ["a"]}}]}])
def test_a_context_without_a_point_or_box_is_no_smart_request(context) -> None:
    assert parse(context) is None


def test_a_smart_keypoint_is_a_positive_point_with_the_chosen_label() -> None:
    prompt = parse({"result": [point(25.0, 50.0)]})
    assert prompt is not None
    assert (prompt.kind, prompt.label, prompt.to_name, prompt.from_name) == ("point", "receipt", "image", "click")
    assert prompt.points == ((25.0, 50.0, True),) and prompt.box is None
    assert prompt.pixel_points(640, 480) == [(160.0, 240.0, True)]


def test_negative_points_are_kept_as_negative_and_a_missing_flag_is_positive() -> None:
    prompt = parse({"result": [point(10, 10, positive=None), point(20, 20, positive=False), point(30, 30)]})
    assert prompt.points == ((10, 10, True), (20, 20, False), (30, 30, True))


def test_a_bare_keypoint_tool_has_no_label() -> None:
    prompt = parse({"result": [point(10, 20, label=None, kind="keypoint")]})
    assert prompt.label is None and prompt.points == ((10, 20, True),)


def test_a_smart_rectangle_is_a_box_in_corners() -> None:
    prompt = parse({"result": [box(10, 20, 30, 40)]})
    assert prompt.kind == "box" and prompt.label == "receipt" and prompt.points == ()
    assert prompt.box == (10, 20, 40, 60)
    assert prompt.pixel_box(200, 100) == (20.0, 20.0, 80.0, 60.0)


def test_a_rotated_rectangle_is_its_bounds_and_a_box_past_the_edge_is_clipped() -> None:
    turned = parse({"result": [box(50, 10, 20, 20, rotation=90)]})
    x1, y1, x2, y2 = turned.box
    # 90 degrees about the top-left corner (50, 10): in pixels 128 x 96 px, it sweeps left of that corner
    assert x2 == pytest.approx(50) and y1 == pytest.approx(10)
    assert x1 == pytest.approx(50 - 20 * 480 / 640) and y2 == pytest.approx(10 + 20 * 640 / 480)
    clipped = parse({"result": [box(90, 90, 30, 30, label=None, kind="rectangle")]})
    assert clipped.box == (90, 90, 100, 100) and clipped.label is None


def test_points_and_a_box_together_the_latest_region_says_which_tool() -> None:
    prompt = parse({"result": [box(10, 10, 50, 50), point(20, 20)]})
    assert prompt.kind == "point" and prompt.box == (10, 10, 60, 60) and prompt.points == ((20, 20, True),)


def test_regions_on_another_image_are_ignored() -> None:
    prompt = parse({"result": [point(5, 5, to_name="other"), point(20, 20)]})
    assert prompt.points == ((20, 20, True),)


@pytest.mark.parametrize("region", [
    {"type": "keypointlabels", "to_name": "image"},  # no value
    {"type": "keypointlabels", "to_name": "image", "value": {"x": "10", "y": 5}},
    {"type": "keypointlabels", "to_name": "image", "value": {"x": float("nan"), "y": 5}},
    {"type": "rectanglelabels", "to_name": "image", "value": {"x": 1, "y": 1, "width": 5}},
    {"type": "rectanglelabels", "to_name": "image", "value": {"x": 120, "y": 1, "width": 5, "height": 5}},
])
def test_a_malformed_region_is_a_bad_request_naming_it(region: dict) -> None:
    assert is_smart({"result": [region]})
    with pytest.raises(BadRequest):
        parse({"result": [region]})


# What Label Studio 1.23.2 sent from the editor, captured in a real browser session (docs/assist.md)
SEEN_POINT = {"original_width": 160, "original_height": 128, "image_rotation": 0,
              "value": {"x": 59.31, "y": 50.69, "width": 0.26, "labels": ["red"], "keypointlabels": ["red"]},
              "is_positive": True, "id": "7--Clbjw0p", "from_name": "click", "to_name": "image",
              "type": "keypointlabels", "origin": "manual"}
SEEN_BOX = {"original_width": 384, "original_height": 288, "image_rotation": 0,
            "value": {"x": 37.11, "y": 27.23, "width": 35.88, "height": 47.84, "rotation": 0,
                      "rectanglelabels": ["circle"]},
            "id": "wK8oLScyQX", "from_name": "box", "to_name": "image", "type": "rectanglelabels", "origin": "manual"}


def test_the_regions_label_studio_sends_as_seen_in_a_browser() -> None:
    point = parse({"result": [SEEN_POINT]})
    assert (point.kind, point.label, point.points) == ("point", "red", ((59.31, 50.69, True),))
    assert point.pixel_points(160, 128)[0][:2] == pytest.approx((94.9, 64.9), abs=0.05)
    box = parse({"result": [SEEN_BOX]})
    assert (box.kind, box.label, box.from_name) == ("box", "circle", "box")
    assert box.pixel_box(384, 288) == pytest.approx((142.5, 78.4, 280.3, 216.2), abs=0.1)
    # auto-accept off: every new point re-sends the earlier ones, negative (Alt+click) ones included
    piled = parse({"result": [SEEN_POINT, {**SEEN_POINT, "id": "n", "is_positive": False,
                                            "value": {**SEEN_POINT["value"], "x": 21.6, "y": 21.6}},
                              {**SEEN_POINT, "id": "p2", "value": {**SEEN_POINT["value"], "x": 61.4, "y": 54.7}}]})
    assert piled.points == ((59.31, 50.69, True), (21.6, 21.6, False), (61.4, 54.7, True))
