"""Tiles for small objects in large images: windows, merging across tile edges, and a real model's recall."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from yolo_backend.errors import LabelConfigError
from yolo_backend.formats.controls import ControlSpec
from yolo_backend.formats.convert import Detection
from yolo_backend.serving import tiles


def test_windows_cover_the_image_overlap_and_end_flush() -> None:
    found = tiles.windows(1000, 330, 160)
    assert all(x1 - x0 == 160 and y1 - y0 == 160 for x0, y0, x1, y1 in found)
    covered = np.zeros((330, 1000), bool)
    for x0, y0, x1, y1 in found:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert max(x1 for _, _, x1, _ in found) == 1000 and max(y1 for _, _, _, y1 in found) == 330
    xs = sorted({x0 for x0, _, _, _ in found})
    assert all(b - a <= 128 for a, b in itertools.pairwise(xs))  # a fifth of each tile overlaps the next
    assert tiles.windows(100, 80, 160) == [(0, 0, 100, 80)]


def test_an_object_cut_by_a_tile_edge_is_found_once_with_its_whole_box() -> None:
    whole = Detection(0, 0.8, (150.0, 40.0, 180.0, 70.0))  # inside the second tile (128..288)
    cut = Detection(0, 0.9, (150.0, 40.0, 160.0, 70.0))  # its left part, at the first tile's edge (0..160)
    other_class = Detection(1, 0.7, (152.0, 42.0, 178.0, 68.0))
    neighbour = Detection(0, 0.6, (185.0, 40.0, 215.0, 70.0))
    merged = tiles.merge([cut, whole, other_class, neighbour])
    assert [(d.class_id, d.box) for d in merged] == [(0, (150.0, 40.0, 180.0, 70.0)), (1, other_class.box),
                                                      (0, neighbour.box)]
    assert merged[0].score == 0.9
    # known to be a piece (it touches an inner tile edge): folded into the whole one, also of another class
    half_circle_as_square = Detection(1, 0.95, (150.0, 40.0, 160.0, 70.0))
    merged = tiles.merge([whole, neighbour], cut=[half_circle_as_square, cut])
    assert [(d.class_id, d.box, d.score) for d in merged] == [(0, whole.box, 0.8), (0, neighbour.box, 0.6)]


def test_a_shifted_detection_moves_every_geometry() -> None:
    d = Detection(0, 0.5, (1.0, 2.0, 3.0, 4.0), polygon=((1.0, 2.0),), keypoints=((1.0, 2.0, 0.5),))
    moved = tiles.shift(d, 10, 20)
    assert moved.box == (11.0, 22.0, 13.0, 24.0) and moved.polygon == ((11.0, 22.0),)
    assert moved.keypoints == ((11.0, 22.0, 0.5),)


def test_the_tile_size_comes_from_the_control_then_the_setting_and_bad_values_are_named() -> None:
    def spec(tile: str | None) -> ControlSpec:
        return ControlSpec("label", "image", "rectanglelabels",
                           options=(("model_tile", tile),) if tile is not None else ())
    assert tiles.tile_size([spec(None)], 0) == 0
    assert tiles.tile_size([spec(None)], 640) == 640
    assert tiles.tile_size([spec("320")], 640) == 320
    assert tiles.tile_size([spec("0")], 640) == 0  # off for this control whatever TILE says
    with pytest.raises(LabelConfigError, match='model_tile="big" on control \'label\''):
        tiles.tile_size([spec("big")], 0)


@pytest.mark.slow
def test_tiles_find_small_objects_the_whole_image_misses_each_once() -> None:
    from tests.support.synthetic import draw_sample
    from tests.support.trained_model import RECIPE, trained_shapes_model
    from yolo_backend.formats.overlap import box_ios, box_iou
    from yolo_backend.serving.detector import Detector, load_ultralytics

    # objects up to the overlap (a fifth of 160 px): each lies whole in some tile, and its cut pieces join it

    detector = Detector(load_ultralytics(trained_shapes_model()), imgsz=RECIPE["imgsz"])
    found = {"whole": 0, "tiled": 0}
    objects = doubles = 0
    for seed in (1, 2):
        img, shapes = draw_sample(seed, size=(1600, 1200), max_shapes=40, min_side=24, max_side=32)
        pixels = np.asarray(img)[:, :, ::-1].copy()  # BGR, as the fetcher hands images over
        truth = np.array([s.box for s in shapes], float)
        objects += len(shapes)
        for name, size in (("whole", 0), ("tiled", 160)):
            [detections] = tiles.detect(detector, [pixels], size, conf=0.25)
            boxes = np.array([d.box for d in detections], float).reshape(-1, 4)
            if len(boxes):
                found[name] += int((box_iou(truth, boxes).max(axis=1) >= 0.5).sum())
            if name == "tiled":  # each object once: no second box mostly inside or around it
                doubles += int(((box_ios(truth, boxes) >= 0.5).sum(axis=1) > 1).sum())
    print(f"\n[tiles] {objects} objects of 24-32 px in 1600 x 1200: whole image finds {found['whole']}, tiles of 160 "
          f"find {found['tiled']}, {doubles} found twice")
    assert found["tiled"] >= 0.8 * objects and found["whole"] <= 0.2 * objects
    assert doubles <= objects // 20
