"""Oriented boxes: Label Studio's rotated rectangle <-> YOLO OBB row <-> Ultralytics output, all angles."""

from __future__ import annotations

import math
from typing import Any, Sequence

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from label_studio_sdk.converter.utils import convert_annotation_to_yolo_obb, convert_yolo_obb_to_annotation
from PIL import Image
from ultralytics.utils.ops import regularize_rboxes, xywhr2xyxyxyxy

from tests.support.sample_images import Sample, write_sample
from yolo_backend import kinds
from yolo_backend.formats import convert, label_config
from yolo_backend.formats.controls import ControlSpec
from yolo_backend.formats.convert import Detection, Target
from yolo_backend.formats.yolo_folder import displayed_size
from yolo_backend.kinds import boxes, oriented_boxes

ORIENTATIONS = (1, 3, 6, 8)
TOL = 1e-4  # of the image side
IDS = {"car": 0}
Point = tuple[float, float]


@pytest.fixture(scope="module")
def sizes(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[int, int]]:
    """Displayed sizes of one non-square photo per EXIF orientation (6 and 8 swap the stored sides)."""
    folder = tmp_path_factory.mktemp("exif")
    samples: dict[int, Sample] = {o: write_sample(folder, 3, o) for o in ORIENTATIONS}
    found = {o: displayed_size(s.path) for o, s in samples.items()}
    for orientation, sample in samples.items():
        with Image.open(sample.path) as stored:  # what a naive reader would take as the size
            assert stored.size == (found[orientation][::-1] if orientation in (6, 8) else found[orientation])
        assert found[orientation] == (sample.width, sample.height) and sample.width != sample.height
    found[0] = (3024, 4032)  # "0": a portrait phone photo, where a thin box's rounding would tilt it most
    return found


def rectangle(cx: float, cy: float, w: float, h: float, degrees: float, size: tuple[int, int]) -> list[Point]:
    """Pixel corners of a rectangle turned ``degrees`` clockwise about its centre (Ultralytics' own maths)."""
    corners = xywhr2xyxyxyxy(torch.tensor([[cx * size[0], cy * size[1], w, h, math.radians(degrees)]],
                                          dtype=torch.float64))
    return [(float(x), float(y)) for x, y in corners[0].tolist()]


def same_corners(a: Sequence[Point], b: Sequence[Point], size: tuple[float, float]) -> float:
    """The largest distance (in image sides) from a corner of ``a`` to the nearest corner of ``b``, and back."""
    def far(p: Sequence[Point], q: Sequence[Point]) -> float:
        return max(min(max(abs(x - u) / size[0], abs(y - v) / size[1]) for u, v in q) for x, y in p)
    return max(far(a, b), far(b, a))


def bounds(corners: Sequence[Point]) -> tuple[float, float, float, float]:
    xs, ys = zip(*corners)
    return min(xs), min(ys), max(xs), max(ys)


def region(value: dict[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    return convert.region(value, "car", result_type="rectanglelabels", from_name="label", to_name="image",
                          size=size, region_id="r1")


def line_corners(line: str, size: tuple[int, int]) -> list[Point]:
    numbers = [float(n) for n in line.split()[1:]]
    return [(x * size[0], y * size[1]) for x, y in zip(numbers[0::2], numbers[1::2])]


inside = st.floats(0.3, 0.7)
sides = st.floats(4, 60)  # pixels: small enough to stay inside the image at any angle
angles = st.floats(0, 360, exclude_max=True)


# -- model output -> Label Studio --------------------------------------------------------------
@pytest.mark.parametrize("orientation", (*ORIENTATIONS, 0))
@given(cx=inside, cy=inside, w=sides, h=sides, degrees=angles, reverse=st.booleans())
@settings(max_examples=60, deadline=None)
def test_model_corners_become_a_canonical_value_with_the_same_corners(
        sizes: dict[int, tuple[int, int]], orientation: int, cx: float, cy: float, w: float, h: float,
        degrees: float, reverse: bool) -> None:
    size = sizes[orientation]
    corners = rectangle(cx, cy, w, h, degrees, size)[::-1 if reverse else 1]  # either winding
    det = Detection(0, 0.9, bounds(corners), corners=tuple(corners))
    value = oriented_boxes.KIND.to_value(det, *size)
    assert 0 <= value["rotation"] < 90  # one description per rectangle, as Ultralytics regularises
    assert same_corners(oriented_boxes.value_corners(value, *size), corners, size) < TOL
    regular = regularize_rboxes(torch.tensor([[0, 0, w, h, math.radians(degrees)]], dtype=torch.float64))[0]
    expected = math.degrees(float(regular[4]))
    assert min(abs(value["rotation"] - expected), 90 - abs(value["rotation"] - expected)) < 1e-3


# -- Label Studio -> YOLO -> Label Studio ------------------------------------------------------
@pytest.mark.parametrize("orientation", (*ORIENTATIONS, 0))
@given(cx=inside, cy=inside, w=sides, h=sides, degrees=angles)
@settings(max_examples=60, deadline=None)
def test_value_to_row_and_back_keeps_the_rectangle(sizes: dict[int, tuple[int, int]], orientation: int,
                                                   cx: float, cy: float, w: float, h: float,
                                                   degrees: float) -> None:
    size = sizes[orientation]
    # a value as a person draws it: any rotation, its own origin corner
    left, top = cx * size[0] - w / 2, cy * size[1] - h / 2
    value = {"x": left / size[0] * 100, "y": top / size[1] * 100, "width": w / size[0] * 100,
             "height": h / size[1] * 100, "rotation": degrees}
    drawn = oriented_boxes.value_corners(value, *size)
    assume(all(0 <= x <= size[0] and 0 <= y <= size[1] for x, y in drawn))
    line = kinds.region_line(region(value, size), IDS, task="obb")
    assert line is not None and len(line.split()) == 9 and line.startswith("0 ")
    assert same_corners(line_corners(line, size), drawn, size) < TOL
    back = kinds.label_to_region(convert.parse_yolo_line(line), "car", "rectanglelabels", from_name="label",
                                 to_name="image", size=size, region_id="r1", task="obb")["value"]
    assert back["rectanglelabels"] == ["car"] and 0 <= back["rotation"] < 90
    assert same_corners(oriented_boxes.value_corners(back, *size), drawn, size) < TOL
    again = kinds.region_line(region(back, size), IDS, task="obb")
    assert again is not None and same_corners(line_corners(again, size), drawn, size) < TOL


def test_a_value_with_no_rotation_keeps_its_corner_and_sides() -> None:
    value = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 15.0, "rotation": 0}
    line = oriented_boxes.KIND.to_line(region(value, (640, 480)), 0)
    assert line == "0 0.100000 0.200000 0.400000 0.200000 0.400000 0.350000 0.100000 0.350000"
    assert oriented_boxes.KIND.from_yolo(convert.parse_yolo_line(line), 640, 480) == value


def test_rows_are_clipped_to_the_image_and_dropped_when_nothing_is_left() -> None:
    poking = {"x": 90.0, "y": 40.0, "width": 30.0, "height": 10.0, "rotation": 30}
    line = oriented_boxes.KIND.to_line(region(poking, (640, 480)), 0)
    assert line is not None and all(0 <= float(n) <= 1 for n in line.split()[1:])
    outside = {"x": 120.0, "y": 40.0, "width": 30.0, "height": 10.0, "rotation": 30}
    assert oriented_boxes.KIND.to_line(region(outside, (640, 480)), 0) is None
    assert oriented_boxes.KIND.to_line({"value": {"points": [[1, 2]]}}, 0) is None


# -- agreement with label_studio_sdk.converter -------------------------------------------------
@given(x=st.floats(5, 60), y=st.floats(5, 60), w=st.floats(1, 30), h=st.floats(1, 30), degrees=angles,
       size=st.sampled_from([(640, 480), (480, 640), (1000, 300)]))
@settings(max_examples=200, deadline=None)
def test_corners_agree_with_the_label_studio_converter(x: float, y: float, w: float, h: float, degrees: float,
                                                       size: tuple[int, int]) -> None:
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": degrees}
    ours = oriented_boxes.value_corners(value, *size)
    theirs = convert_annotation_to_yolo_obb({**value, "original_width": size[0], "original_height": size[1]})
    assert max(max(abs(a - u * size[0]) / size[0], abs(b - v * size[1]) / size[1])
               for (a, b), (u, v) in zip(ours, theirs)) < 1e-9  # same corners, same order
    # the converter's import keeps the first corner and any angle; ours is canonical, the same rectangle
    imported = convert_yolo_obb_to_annotation([c for p in ours for c in p], *size)
    ours_back = oriented_boxes.value_from_corners(ours, *size)
    assert same_corners(oriented_boxes.value_corners({k: float(imported[k]) for k in value}, *size),
                        oriented_boxes.value_corners(ours_back, *size), size) < TOL


# -- the registry ------------------------------------------------------------------------------
def test_the_checkpoint_task_picks_oriented_boxes_for_rectangle_labels() -> None:
    assert kinds.for_control("RectangleLabels") is boxes.KIND
    assert kinds.for_control("RectangleLabels", "detect") is boxes.KIND
    assert kinds.for_control("RectangleLabels", "obb") is oriented_boxes.KIND
    assert kinds.for_result("rectanglelabels", "obb") is oriented_boxes.KIND
    assert "obb" in kinds.SERVING_TASKS and kinds.CONTROLS["RectangleLabels"] == "rectanglelabels"


def test_detections_of_an_obb_target_become_rotated_rectangles() -> None:
    corners = tuple(rectangle(0.5, 0.5, 100, 40, 30, (640, 480)))
    det = Detection(0, 0.9, bounds(corners), corners=corners)
    target = Target(ControlSpec("label", "image", "rectanglelabels"), labels={0: "car"}, task="obb")
    (found,) = kinds.detections_to_regions([det], [target], 640, 480)
    assert found["type"] == "rectanglelabels" and found["value"]["rectanglelabels"] == ["car"]
    assert found["value"]["rotation"] == pytest.approx(30, abs=1e-3)
    plain = kinds.detections_to_regions([det], [Target(target.spec, labels={0: "car"})], 640, 480)
    assert plain[0]["value"]["rotation"] == 0


def test_model_obb_on_a_control_demands_an_obb_checkpoint() -> None:
    xml = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image" '
           'model_obb="true"><Label value="car"/></RectangleLabels><RectangleLabels name="plain" '
           'toName="image"><Label value="car"/></RectangleLabels></View>')
    forced, plain = label_config.parse(xml)
    assert (forced.task, plain.task) == ("obb", None)
    with pytest.raises(kinds.KindMismatch, match="model_obb"):
        kinds.serving_kind(forced.kind, "detect", forced.task, forced.from_name)
    assert kinds.serving_kind(forced.kind, "obb", forced.task) is oriented_boxes.KIND
    assert kinds.serving_kind(plain.kind, "obb") is oriented_boxes.KIND
    assert kinds.serving_kind(plain.kind, "detect") is boxes.KIND
    with pytest.raises(kinds.KindMismatch, match="<RectangleLabels>"):
        kinds.serving_kind("polygonlabels", "obb")
