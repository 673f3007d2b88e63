"""Each kind's whole data path: model output -> Label Studio -> YOLO row -> Label Studio, and the registry."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image

from tests.support.sample_images import Sample, write_sample
from yolo_backend import kinds
from yolo_backend.formats import convert, label_config
from yolo_backend.formats.controls import ControlSpec
from yolo_backend.formats.convert import Detection, Target
from yolo_backend.formats.yolo_folder import displayed_size
from yolo_backend.kinds.boxes import KIND as boxes
from yolo_backend.kinds.masks import KIND as masks
from yolo_backend.kinds.outlines import KIND as outlines
from yolo_backend.media.fetcher import open_image

PACKAGE = Path(__file__).resolve().parents[2] / "yolo_backend"
ORIENTATIONS = (1, 3, 6, 8)
TOL = 1e-4  # of the image side, as the YOLO <-> Label Studio round trips elsewhere
IDS = {"car": 0, "person": 1}
# kinds with a region per object and a row per region; keypoints and classes read whole images (own tests)
REGION_KINDS = [kind for kind in kinds.KINDS if not isinstance(kind, kinds.WholeImageKind)]


@pytest.fixture(scope="module")
def shown(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Sample]:
    """One non-square photo per EXIF orientation; its size as displayed is what regions refer to."""
    folder = tmp_path_factory.mktemp("exif")
    seed = next(s for s in range(50) if _non_square(s))  # 6 and 8 must visibly swap the sides
    return {o: write_sample(folder, seed, o) for o in ORIENTATIONS}


def _non_square(seed: int) -> bool:
    from tests.support.synthetic import draw_sample

    img, _ = draw_sample(seed, max_shapes=1)
    return img.width != img.height


def region_of(kind: Any, value: dict[str, Any], size: tuple[int, int], label: str = "car") -> dict[str, Any]:
    return convert.region(value, label, result_type=kind.RESULT_TYPE, from_name="label", to_name="image",
                          size=size, region_id="r1")


def back_to_value(line: str, kind: Any, size: tuple[int, int]) -> dict[str, Any]:
    """A YOLO row imported as ``kind`` (what ``yolo-ls import-yolo`` does per line)."""
    region = kinds.label_to_region(convert.parse_yolo_line(line), "car", kind.RESULT_TYPE, from_name="label",
                                   to_name="image", size=size, region_id="r1")
    assert region["value"][kind.RESULT_TYPE] == ["car"] and region["type"] == kind.RESULT_TYPE
    assert (region["original_width"], region["original_height"]) == size
    return region["value"]


# -- the photos: displayed sizes -------------------------------------------------------------
def test_displayed_size_swaps_the_stored_sides_for_orientations_6_and_8(shown: dict[int, Sample]) -> None:
    for orientation, sample in shown.items():
        size = displayed_size(sample.path)  # what every region's coordinates refer to
        assert size == (sample.width, sample.height) == open_image(sample.path, 10**8).size
        with Image.open(sample.path) as stored:
            assert stored.size == (size[::-1] if orientation in (6, 8) else size) and size[0] != size[1]


# -- Label Studio -> YOLO -> Label Studio --------------------------------------------------------
percent = st.floats(0, 100, allow_nan=False)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@given(a=percent, b=percent, c=percent, d=percent)
def test_boxes_round_trip(shown: dict[int, Sample], orientation: int, a: float, b: float, c: float,
                          d: float) -> None:
    size = displayed_size(shown[orientation].path)
    (x, right), (y, bottom) = sorted((a, c)), sorted((b, d))
    assume(right - x > 1e-3 and bottom - y > 1e-3)
    value = {"x": x, "y": y, "width": right - x, "height": bottom - y, "rotation": 0}
    line = kinds.region_line(region_of(boxes, value, size), IDS)
    assert line is not None and len(line.split()) == 5 and line.startswith("0 ")
    again = back_to_value(line, boxes, size)
    assert again["rotation"] == 0
    for key in ("x", "y", "width", "height"):
        assert abs(again[key] - value[key]) / 100 <= TOL


points = st.lists(st.tuples(percent, percent), min_size=3, max_size=12)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@given(corners=points)
def test_outlines_round_trip(shown: dict[int, Sample], orientation: int, corners: list[tuple[float, float]]) -> None:
    size = displayed_size(shown[orientation].path)
    _, _, w, h = convert.points_bounds(corners)
    assume(w > 1e-3 and h > 1e-3)
    value = {"points": [list(p) for p in corners], "closed": True}
    line = kinds.region_line(region_of(outlines, value, size), IDS)
    assert line is not None and len(line.split()) == 1 + 2 * len(corners)
    again = back_to_value(line, outlines, size)
    assert again["closed"] is True and len(again["points"]) == len(corners)
    for (gx, gy), (wx, wy) in zip(again["points"], corners):
        assert abs(gx - wx) / 100 <= TOL and abs(gy - wy) / 100 <= TOL


@pytest.mark.parametrize("line", ["1 0.25 0.4 0.3 0.2", "1 0.1 0.2 0.5 0.2 0.3 0.7"])
def test_yolo_rows_import_and_export_unchanged(line: str) -> None:
    """YOLO -> Label Studio -> YOLO for each kind; a segment row read as boxes keeps its bounding box."""
    parsed = convert.parse_yolo_line(line)
    for kind in REGION_KINDS:
        value = back_to_value(line, kind, (640, 480))
        again = convert.parse_yolo_line(kinds.region_line(region_of(kind, value, (640, 480), "person"), IDS) or "")
        assert again.class_id == 1
        assert (again.cx, again.cy, again.w, again.h) == pytest.approx((parsed.cx, parsed.cy, parsed.w, parsed.h),
                                                                      abs=TOL)
        if kind is outlines and parsed.points:
            assert [v for p in again.points or () for v in p] == pytest.approx([v for p in parsed.points for v in p],
                                                                              abs=TOL)
        if kind is outlines and not parsed.points:  # a box row imported as an outline: its 4 corners
            assert len(value["points"]) == 4


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_a_rotated_rectangle_trains_as_its_bounding_box_in_displayed_pixels(shown: dict[int, Sample],
                                                                           orientation: int) -> None:
    width, height = displayed_size(shown[orientation].path)
    value = {"x": 50, "y": 20, "width": 20, "height": 10, "rotation": 90}
    line = kinds.region_line(region_of(boxes, value, (width, height)), IDS)
    box = convert.parse_yolo_line(line or "")
    # In pixels: the corner (0.5 W, 0.2 H); the 0.2 W side turned 90 degrees clockwise points down,
    # the 0.1 H side points left.
    left, top, right, bottom = 0.5 * width - 0.1 * height, 0.2 * height, 0.5 * width, 0.2 * height + 0.2 * width
    want = ((left + right) / 2 / width, (top + bottom) / 2 / height, (right - left) / width, (bottom - top) / height)
    assert (box.cx, box.cy, box.w, box.h) == pytest.approx(want, abs=1e-6)


# -- model output -> Label Studio -> YOLO ----------------------------------------------------------
@pytest.mark.parametrize("orientation", ORIENTATIONS)
@given(a=st.floats(0, 1), b=st.floats(0, 1), c=st.floats(0, 1), d=st.floats(0, 1), outline=st.booleans())
def test_model_output_value_and_row_agree(shown: dict[int, Sample], orientation: int, a: float, b: float, c: float,
                                          d: float, outline: bool) -> None:
    width, height = displayed_size(shown[orientation].path)
    (x1, x2), (y1, y2) = sorted((a * width, c * width)), sorted((b * height, d * height))
    assume(x2 - x1 > 0.5 and y2 - y1 > 0.5)
    polygon = ((x1, y1), (x2, (y1 + y2) / 2), ((x1 + x2) / 2, y2)) if outline else None
    det = Detection(1, 0.9, (x1, y1, x2, y2), polygon)
    for kind in REGION_KINDS:
        target = Target(ControlSpec("label", "image", kind.RESULT_TYPE), {1: "person"}, threshold=0.5)
        region = kinds.detection_to_region(det, target, width, height)
        assert region["type"] == kind.RESULT_TYPE and region["value"][kind.RESULT_TYPE] == ["person"]
        assert (region["original_width"], region["original_height"]) == (width, height)
        if kind is masks:  # filled at the displayed size: each edge within a pixel; under 2 px it may fill no area
            line = kinds.region_line(region, IDS)
            assert line is not None or min(x2 - x1, y2 - y1) < 2
            if line:
                got = convert.parse_yolo_line(line)
                edges = [(got.cx - got.w / 2) * width, (got.cy - got.h / 2) * height,
                         (got.cx + got.w / 2) * width, (got.cy + got.h / 2) * height]
                assert edges == pytest.approx([x1, y1, x2, y2], abs=1.001)  # a pixel, and the row's 6 decimals
            continue
        row = convert.parse_yolo_line(kinds.region_line(region, IDS) or "")
        assert row.class_id == 1
        if kind is outlines and polygon:
            want_points = [v for px, py in polygon for v in (px / width, py / height)]
            assert [v for point in row.points or () for v in point] == pytest.approx(want_points, abs=TOL)
            continue
        want = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
        assert (row.cx, row.cy, row.w, row.h) == pytest.approx(want, abs=TOL)


# -- one label file per annotation -----------------------------------------------------------------
def test_a_file_with_outlines_writes_its_boxes_as_corners_and_skips_what_no_kind_trains() -> None:
    rect = region_of(boxes, {"x": 10, "y": 10, "width": 50, "height": 50, "rotation": 0}, (200, 300))
    poly = region_of(outlines, {"points": [[50, 50], [90, 50], [70, 90]], "closed": True}, (200, 300), "person")
    other_control = {**rect, "from_name": "elsewhere"}
    unknown_label = region_of(boxes, {"x": 1, "y": 1, "width": 5, "height": 5}, (200, 300), "truck")
    choice = {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["car"]}}
    annotation = {"result": [rect, poly, other_control, unknown_label, choice]}
    assert kinds.annotation_lines(annotation, IDS, "label") == [
        "0 0.100000 0.100000 0.600000 0.100000 0.600000 0.600000 0.100000 0.600000",
        "1 0.500000 0.500000 0.900000 0.500000 0.700000 0.900000"]
    box_row = "0 0.350000 0.350000 0.500000 0.500000"
    assert kinds.annotation_lines({"result": [rect, other_control]}, IDS) == [box_row, box_row]
    assert kinds.annotation_lines({"result": [rect]}, IDS, "label", "elsewhere") == []


def test_a_dataset_with_an_outline_anywhere_writes_every_box_as_corners() -> None:
    box = ["0 0.500000 0.500000 0.200000 0.400000"]
    outline = ["1 0.100000 0.100000 0.200000 0.100000 0.200000 0.200000"]
    assert kinds.one_row_format([box, box]) == [box, box]
    corners = ["0 0.400000 0.300000 0.600000 0.300000 0.600000 0.700000 0.400000 0.700000"]
    assert kinds.one_row_format([box, outline, []]) == [corners, outline, []]


def test_an_outline_without_area_or_points_trains_nothing() -> None:
    for points in ([[10, 10], [20, 20]], [[10, 10], [20, 10], [30, 10]], [[150, 10], [160, 20], [170, 5]], None):
        assert kinds.region_line(region_of(outlines, {"points": points}, (100, 100)), IDS) is None


# -- the registry --------------------------------------------------------------------------------
def test_the_registry_maps_tags_and_result_types_to_their_kind() -> None:
    assert kinds.for_control("RectangleLabels") is boxes and kinds.for_control("PolygonLabels") is outlines
    assert kinds.for_result("rectanglelabels") is boxes and kinds.for_result("polygonlabels") is outlines
    assert kinds.for_control("RectangleLabels", task="segment") is boxes  # oriented boxes only for obb
    assert label_config.SUPPORTED_CONTROLS == {
        "RectangleLabels": "rectanglelabels", "PolygonLabels": "polygonlabels", "BrushLabels": "brushlabels",
        "KeyPointLabels": "keypointlabels", "Choices": "choices"}
    assert set(kinds.SERVING_TASKS) == {"detect", "segment", "obb", "pose", "classify"}
    for kind in kinds.KINDS:
        metric = "top-1" if kind.TRAIN_TASK == "classify" else "mAP50-95"
        assert metric == kind.METRIC
        assert set(kind.TASKS) <= {"detect", "segment", "obb", "pose", "classify"} and kind.TRAIN_TASK in kind.TASKS
    # each Ultralytics task trains exactly one kind of a control, so a run knows which rows to write
    assert len({(kind.CONTROL, kind.TRAIN_TASK) for kind in kinds.KINDS}) == len(kinds.KINDS)


@pytest.mark.parametrize("lookup, name", [(kinds.for_control, "TextArea"), (kinds.for_result, "textarea")])
def test_an_unknown_kind_says_which_are_known_and_how_to_add_one(lookup: Any, name: str) -> None:
    with pytest.raises(kinds.UnknownKind, match=r"no kind handles .*known: .*[Rr]ectangle.*yolo_backend/kinds/"):
        lookup(name)


# -- what serves is what ships ----------------------------------------------------------------------
def test_the_package_never_imports_tests() -> None:
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not [n for n in names if n.split(".")[0] == "tests"], f"{path} imports {names}"
    assert not (PACKAGE / "synthetic.py").exists() and not (PACKAGE / "random_model.py").exists()
    script = ("import importlib, pkgutil, sys, yolo_backend\n"
              "for m in pkgutil.walk_packages(yolo_backend.__path__, 'yolo_backend.'):\n"
              "    importlib.import_module(m.name)\n"
              "assert not [m for m in sys.modules if m.split('.')[0] == 'tests'], 'tests imported'\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd="/")
