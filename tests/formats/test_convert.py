"""Coordinate rules between pixels, YOLO boxes and Label Studio results (through the box and outline kinds)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.region_boxes import region_box
from yolo_backend import kinds
from yolo_backend.formats import convert
from yolo_backend.formats.controls import ControlSpec
from yolo_backend.formats.convert import Detection, Target, YoloBox

RECT = Target(ControlSpec("label", "image", "rectanglelabels"), {0: "Car", 1: "Person"}, threshold=0.5)
POLY = Target(ControlSpec("poly", "image", "polygonlabels"), {0: "Car"}, threshold=0.0)


def test_pixels_to_percent_box_is_percent_of_displayed_size() -> None:
    assert convert.pixels_to_percent_box((64, 48, 192, 144), 640, 480) == (10.0, 10.0, 20.0, 20.0)


def test_boxes_past_the_edge_are_clipped() -> None:
    x, y, w, h = convert.pixels_to_percent_box((-10, -5, 700, 500), 640, 480)
    assert (x, y, w, h) == (0.0, 0.0, 100.0, 100.0)


def test_region_has_everything_label_studio_needs() -> None:
    det = Detection(1, 0.876543, (10, 20, 110, 220))
    region = kinds.detection_to_region(det, RECT, 200, 400)
    assert region["from_name"] == "label" and region["to_name"] == "image"
    assert region["type"] == "rectanglelabels"
    assert (region["original_width"], region["original_height"]) == (200, 400)
    assert region["score"] == 0.8765
    assert region["value"] == {"x": 5.0, "y": 5.0, "width": 50.0, "height": 50.0, "rotation": 0,
                               "rectanglelabels": ["Person"]}


def test_unmapped_classes_and_low_scores_are_dropped() -> None:
    dets = [Detection(0, 0.9, (0, 0, 10, 10)), Detection(5, 0.99, (0, 0, 10, 10)), Detection(1, 0.2, (0, 0, 5, 5))]
    regions = kinds.detections_to_regions(dets, [RECT], 100, 100)
    assert [r["value"]["rectanglelabels"] for r in regions] == [["Car"]]


def test_box_becomes_four_point_polygon_without_mask() -> None:
    region = kinds.detection_to_region(Detection(0, 0.7, (10, 10, 50, 30)), POLY, 100, 100)
    assert region["value"]["points"] == [[10.0, 10.0], [50.0, 10.0], [50.0, 30.0], [10.0, 30.0]]
    assert region["value"]["closed"] is True and region["value"]["polygonlabels"] == ["Car"]


def test_mask_outline_becomes_polygon() -> None:
    outline = ((10.0, 10.0), (50.0, 12.0), (40.0, 40.0), (12.0, 30.0), (8.0, 20.0))
    region = kinds.detection_to_region(Detection(0, 0.7, (8, 10, 50, 40), outline), POLY, 200, 100)
    assert region["value"]["points"][1] == [25.0, 12.0]
    assert len(region["value"]["points"]) == 5


def test_task_score_is_mean_of_regions() -> None:
    regions = [{"score": 0.5}, {"score": 1.0}]
    assert convert.task_prediction(regions, "v1") == {"result": regions, "score": 0.75, "model_version": "v1"}
    assert convert.task_prediction([], "v1")["score"] == 0.0


def test_region_ids_are_stable_and_distinct() -> None:
    a = kinds.detections_to_regions([Detection(0, 0.9, (0, 0, 9, 9)), Detection(0, 0.9, (5, 5, 20, 20))],
                                      [RECT], 50, 50)
    b = kinds.detections_to_regions([Detection(0, 0.9, (0, 0, 9, 9)), Detection(0, 0.9, (5, 5, 20, 20))],
                                      [RECT], 50, 50)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert len({r["id"] for r in a}) == 2


def test_polygon_region_trains_as_its_points_whose_bounds_are_its_box() -> None:
    region = {"type": "polygonlabels", "value": {"points": [[10, 20], [30, 20], [30, 60], [10, 60]],
                                                 "polygonlabels": ["Car"]}}
    assert kinds.region_line(region, {"Car": 3}) == "3 0.100000 0.200000 0.300000 0.200000 0.300000 0.600000 " \
                                                    "0.100000 0.600000"
    box = region_box(region, {"Car": 3})
    assert box is not None and box.class_id == 3
    assert (box.cx, box.cy, box.w, box.h) == pytest.approx((0.2, 0.4, 0.2, 0.4), abs=1e-12)


def test_region_with_unknown_label_is_skipped() -> None:
    region = {"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 5, "height": 5,
                                                   "rectanglelabels": ["Truck"]}}
    assert region_box(region, {"Car": 0}) is None


def test_rotated_rectangle_becomes_its_bounding_box() -> None:
    region = {"type": "rectanglelabels", "original_width": 100, "original_height": 100,
              "value": {"x": 50, "y": 50, "width": 20, "height": 10, "rotation": 90, "rectanglelabels": ["Car"]}}
    box = region_box(region, {"Car": 0})
    assert box is not None
    assert box.w == pytest.approx(0.10) and box.h == pytest.approx(0.20)
    assert box.cx == pytest.approx(0.45) and box.cy == pytest.approx(0.60)


@pytest.mark.parametrize("line, expected", [
    ("0 0.5 0.5 0.2 0.1", YoloBox(0, 0.5, 0.5, 0.2, 0.1)),
    ("2 0.5 0.5 0.2 0.1 0.93", YoloBox(2, 0.5, 0.5, 0.2, 0.1)),
    ("1 0.1 0.1 0.3 0.1 0.3 0.5 0.1 0.5", YoloBox(1, 0.2, 0.3, 0.2, 0.4)),
])
def test_parse_yolo_lines(line: str, expected: YoloBox) -> None:
    got = convert.parse_yolo_line(line)
    assert got.class_id == expected.class_id
    assert (got.cx, got.cy, got.w, got.h) == pytest.approx((expected.cx, expected.cy, expected.w, expected.h))


def test_parse_yolo_line_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="class cx cy w h"):
        convert.parse_yolo_line("0 0.5")


unit = st.floats(0, 1, allow_nan=False)
sizes = st.integers(1, 8000)


@given(sizes, sizes, unit, unit, unit, unit)
def test_any_box_inside_the_image_stays_inside_0_100(w: int, h: int, a: float, b: float, c: float, d: float) -> None:
    box = (min(a, c) * w, min(b, d) * h, max(a, c) * w, max(b, d) * h)
    x, y, bw, bh = convert.pixels_to_percent_box(box, w, h)
    assert 0 <= x <= 100 and 0 <= y <= 100 and bw >= 0 and bh >= 0
    assert x + bw <= 100 + 1e-9 and y + bh <= 100 + 1e-9


@given(st.integers(0, 50), unit, unit, unit, unit)
def test_yolo_to_label_studio_and_back_within_1e_4(class_id: int, a: float, b: float, c: float, d: float) -> None:
    left, right = sorted((a, c))
    top, bottom = sorted((b, d))
    original = YoloBox(class_id, (left + right) / 2, (top + bottom) / 2, right - left, bottom - top)
    x, y, w, h = convert.yolo_to_percent(original)
    region = {"type": "rectanglelabels", "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": ["c"]}}
    back = region_box(region, {"c": class_id})
    if w == 0 or h == 0:  # degenerate boxes are not kept as training data
        assert back is None
        return
    assert back is not None and back.class_id == class_id
    assert (back.cx, back.cy, back.w, back.h) == pytest.approx(
        (original.cx, original.cy, original.w, original.h), abs=1e-4)
