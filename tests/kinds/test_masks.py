"""Masks (``<BrushLabels>``): Label Studio's RLE, mask <-> segment row round trips, EXIF, predict parity.

Pure conversion first (no model), then a tiny segment checkpoint served through the Flask
app against ``YOLO(path).predict``, then the import/export CLI and a real training run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle

from tests.support.tiny_segment import NAMES, ShapeSample, outline, outline_mask, segment_row, write
from yolo_backend import kinds
from yolo_backend.cli import main
from yolo_backend.config import Settings
from yolo_backend.formats import convert
from yolo_backend.formats.convert import Detection
from yolo_backend.formats.yolo_folder import write_data_yaml
from yolo_backend.kinds import masks

SIZE = (160, 128)
ORIENTATIONS = (1, 3, 6, 8)
SHAPES = [("square", 70, 60, 25, 17), ("triangle", 40, 40, 30, 80), ("circle", 100, 70, 22, 0),
          ("square", 20, 100, 9, 0), ("circle", 80, 64, 55, 10)]
LABELS = "".join(f'<Label value="{n}"/>' for n in NAMES)


def brush_config(model_path: str = "seg.pt") -> str:
    return (f'<View><Image name="image" value="$image"/><BrushLabels name="label" toName="image" '
            f'model_path="{model_path}">{LABELS}</BrushLabels></View>')


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def brush_region(mask: np.ndarray, label: str = "red") -> dict:
    height, width = mask.shape
    return {"from_name": "label", "to_name": "image", "type": "brushlabels", "original_width": width,
            "original_height": height, "value": {**masks.value_of(mask), "brushlabels": [label]}}


def row_mask(row: str, width: int, height: int) -> np.ndarray:
    return masks.fill([(x * width, y * height) for x, y in convert.parse_yolo_line(row).points], width, height)


def centres_inside(points, width: int, height: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The exact reference: pixels ``(i, j)`` (Ultralytics' convention: a pixel's index is its centre) inside."""
    from matplotlib.path import Path as Outline

    ys, xs = np.mgrid[0:height, 0:width]
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    return Outline(np.asarray(points, float)).contains_points(centres).reshape(height, width)


def bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max(), ys.max()


# -- Label Studio's RLE ----------------------------------------------------------------------------
def test_the_value_is_label_studios_rgba_rle_and_decodes_back_exactly() -> None:
    mask = outline_mask(outline("circle", 50, 40, 30, 0), *SIZE)
    value = masks.value_of(mask)
    assert value["format"] == "rle" and all(isinstance(b, int) and 0 <= b < 256 for b in value["rle"])
    rgba = decode_rle(value["rle"]).reshape(SIZE[1], SIZE[0], 4)  # 4 bytes a pixel, rows of the displayed width
    assert (rgba[:, :, 3] == np.where(mask, 255, 0)).all() and (rgba[:, :, 0] == rgba[:, :, 3]).all()
    assert (masks.region_mask(brush_region(mask)) == mask).all()


@pytest.mark.parametrize("broken", [{"value": {"format": "rle", "rle": []}}, {"value": {"rle": [1, 2, 3]}},
                                    {"value": {"format": "rle"}}, {"original_width": 10, "original_height": 10},
                                    {"value": {"format": "rle", "rle": [255, 255, 255, 255, 0]}},
                                    {"value": {"format": "rle", "rle": ["x", 1, 2, 3, 4]}}])
def test_an_unreadable_or_mis_sized_rle_gives_no_row(broken: dict) -> None:
    region = {**brush_region(np.ones((8, 8), bool)), **broken}
    assert masks.KIND.to_line(region, 0) is None


def test_an_empty_mask_or_a_speck_gives_no_row() -> None:
    empty = np.zeros(SIZE[::-1], bool)
    assert masks.KIND.to_line(brush_region(empty), 0) is None
    speck = empty.copy()
    speck[5, 5] = True
    assert masks.KIND.to_line(brush_region(speck), 0) is None


# -- round trips -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}-{s[3]}" for s in SHAPES])
@pytest.mark.parametrize("size", [SIZE, SIZE[::-1], (1280, 960)])
def test_mask_to_row_to_mask_gives_the_same_pixels(shape: tuple, size: tuple[int, int]) -> None:
    kind, cx, cy, radius, degrees = shape
    k = size[0] / SIZE[0] if size[0] > 200 else 1  # the big image: the same shape, scaled
    mask = outline_mask(outline(kind, cx * k, cy * k, radius * k, degrees), *size)
    row = masks.KIND.to_line(brush_region(mask), 1)
    assert row is not None and row.startswith("1 ") and convert.is_segment_line(row)
    numbers = [float(n) for n in row.split()[1:]]
    assert all(0 <= n <= 1 for n in numbers)
    measured = iou(row_mask(row, *size), mask)
    print(f"\n{kind} r={radius * k:.0f} on {size}: mask -> row -> mask IoU {measured:.4f}, {len(numbers) // 2} points")
    assert measured >= 0.98


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}-{s[3]}" for s in SHAPES])
def test_row_to_value_to_row_keeps_the_mask_and_the_box_within_a_pixel(shape: tuple) -> None:
    kind, cx, cy, radius, degrees = shape
    width, height = SIZE
    row = segment_row(0, outline(kind, cx, cy, radius, degrees), width, height)
    value = masks.KIND.from_yolo(convert.parse_yolo_line(row), width, height)
    region = {"original_width": width, "original_height": height, "value": {**value, "brushlabels": ["red"]}}
    again = masks.KIND.to_line(region, 0)
    assert again is not None
    assert iou(row_mask(again, width, height), row_mask(row, width, height)) >= 0.98
    first, second = convert.parse_yolo_line(row), convert.parse_yolo_line(again)
    for a, b in zip(_box(first, width, height), _box(second, width, height)):
        assert abs(a - b) <= 1.0  # pixels


def _box(label: convert.YoloBox, width: int, height: int) -> tuple[float, float, float, float]:
    return ((label.cx - label.w / 2) * width, (label.cy - label.h / 2) * height,
            (label.cx + label.w / 2) * width, (label.cy + label.h / 2) * height)


def test_a_box_row_imports_as_a_filled_rectangle() -> None:
    value = masks.KIND.from_yolo(convert.parse_yolo_line("0 0.5 0.5 0.25 0.5"), *SIZE)
    mask = masks.region_mask({"original_width": SIZE[0], "original_height": SIZE[1], "value": value})
    assert bounds(mask) == (60, 32, 100, 96) and mask.sum() == 41 * 65  # pixels 60..100 x 32..96, edges included
    assert masks.KIND.to_line({"original_width": SIZE[0], "original_height": SIZE[1], "value": value}, 0) == (
        "0 0.375000 0.250000 0.375000 0.750000 0.625000 0.750000 0.625000 0.250000")  # the same box, exactly


def test_a_mask_in_pieces_is_one_row_covering_every_piece_and_holes_are_filled() -> None:
    mask = outline_mask(outline("circle", 30, 30, 15, 0), *SIZE)
    mask |= outline_mask(outline("square", 110, 80, 20, 0), *SIZE)
    ring = mask.copy()
    ring[28:33, 28:33] = False  # a hole
    row = masks.KIND.to_line(brush_region(ring), 0)
    assert row is not None and len(row.splitlines()) == 1
    back = row_mask(row, *SIZE)
    assert back[mask].all()  # both pieces, the hole filled
    assert (back & ~mask).sum() <= 60  # only the seam joining them is extra


def test_a_detection_becomes_its_outline_filled_or_its_box() -> None:
    points = outline("triangle", 80, 64, 45, 0)
    value = masks.KIND.to_value(Detection(0, 0.9, (0, 0, 1, 1), polygon=points), *SIZE)
    mask = masks.region_mask({"original_width": SIZE[0], "original_height": SIZE[1], "value": value})
    exact = centres_inside(points, *SIZE)
    assert mask[exact].all() and iou(mask, exact) >= 0.95  # edges included: the border pixels they cross
    boxed = masks.KIND.to_value(Detection(0, 0.9, (10, 20, 30, 50)), *SIZE)
    boxed_mask = masks.region_mask({"original_width": SIZE[0], "original_height": SIZE[1], "value": boxed})
    assert bounds(boxed_mask) == (10, 20, 30, 50)


def test_the_registry_routes_brushlabels_to_masks() -> None:
    assert kinds.for_control("BrushLabels") is masks.KIND and kinds.for_result("brushlabels", "segment") is masks.KIND
    region = brush_region(outline_mask(outline("circle", 80, 64, 20, 0), *SIZE), "blue")
    assert kinds.region_line(region, {"red": 0, "blue": 1}, task="segment").startswith("1 ")
    assert kinds.region_line(region, {"red": 0, "blue": 1}, task="detect") is None  # a detect dataset has no masks
    pair = ((0, 0, 1, 1), outline("circle", 80, 64, 20, 0))
    assert masks.KIND.overlap([pair], [pair])[0, 0] > 0.99


# -- EXIF: import gives masks on the displayed image ------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ShapeSample]]:
    """A segment dataset, one image per EXIF orientation, wider than tall (6 and 8 swap the stored sides)."""
    root = tmp_path_factory.mktemp("seg-ds")
    samples = [write(root / "images" / "train", seed, orientation) for seed, orientation in enumerate(ORIENTATIONS)]
    (root / "labels" / "train").mkdir(parents=True)
    for sample in samples:
        rows = [segment_row(cls, points, sample.width, sample.height) for cls, points in sample.objects]
        (root / "labels" / "train" / f"{sample.path.stem}.txt").write_text("\n".join(rows) + "\n")
    write_data_yaml(root, NAMES, splits=("train",))
    return root, samples


@pytest.fixture(scope="module")
def imported(dataset, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    root, _ = dataset
    out = tmp_path_factory.mktemp("tasks") / "tasks.json"
    assert main(["import-yolo", str(root), "--type", "brushlabels", "--as", "annotations", "--document-root",
                 str(root), "-o", str(out), "--no-progress"]) == 0
    tasks = json.loads(out.read_text())
    for index, task in enumerate(tasks):
        task["id"] = index + 1
    return tasks


def test_import_gives_brush_masks_on_the_displayed_image(dataset, imported) -> None:
    _, samples = dataset
    assert len(imported) == len(samples)
    for task, sample in zip(imported, samples):
        regions = task["annotations"][0]["result"]
        assert len(regions) == len(sample.objects) > 0
        for region, (cls, _), truth in zip(regions, sample.objects, sample.masks()):
            assert (region["original_width"], region["original_height"]) == (sample.width, sample.height)
            assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == [NAMES[cls]]
            assert region["value"]["format"] == "rle"
            assert iou(masks.region_mask(region), truth) >= 0.95, sample.path.name


def test_export_writes_segment_rows_ultralytics_reads(dataset, imported, tmp_path: Path) -> None:
    root, samples = dataset
    source = tmp_path / "export.json"
    source.write_text(json.dumps(imported))
    out = tmp_path / "ds"
    assert main(["export-yolo", "--from-file", str(source), "-o", str(out), "--task", "segment", "--classes",
                 ",".join(NAMES), "--document-root", str(root), "--val", "0", "--no-progress"]) == 0
    truth = {sample.path.name: sample for sample in samples}
    labels = sorted((out / "labels" / "train").glob("*.txt"))
    assert len(labels) == len(samples)
    worst = 1.0
    for label in labels:
        sample = truth[f"{label.stem}.png"]
        rows = label.read_text().splitlines()
        assert len(rows) == len(sample.objects) and all(convert.is_segment_line(row) for row in rows)
        for row, (cls, _), mask in zip(rows, sample.objects, sample.masks()):
            assert int(row.split()[0]) == cls
            worst = min(worst, iou(row_mask(row, sample.width, sample.height), mask))
    print(f"\nexported rows vs drawn masks: worst IoU {worst:.4f}")
    assert worst >= 0.95
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(out / "data.yaml"))
    dataset_ = YOLODataset(img_path=data["train"], data=data, task="segment", imgsz=160, augment=False)
    assert len(dataset_.labels) == len(samples)
    assert all(len(label["segments"]) == len(label["cls"]) > 0 for label in dataset_.labels)


# -- a segment checkpoint through /predict -----------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """The app serving the tiny segment model (``seg.pt``) and a detect checkpoint (``det.pt``)."""
    import shutil

    from ultralytics import YOLO

    from model import YOLOBackend
    from tests.support.tiny_segment import tiny_segment_model
    from yolo_backend.web.http_api import create_app

    root = tmp_path_factory.mktemp("seg-root")
    shutil.copyfile(tiny_segment_model(), root / "seg.pt")
    YOLO("yolov5nu.yaml").save(str(root / "det.pt"))
    docs = tmp_path_factory.mktemp("seg-docs")
    samples = [write(docs, 50_000 + i, orientation) for i, orientation in enumerate(ORIENTATIONS)]
    settings = Settings.from_env({}, model_root=str(root), model_path="seg.pt", model_dir=str(docs.parent / "st"),
                                 local_files_document_root=str(docs), model_score_threshold=0.25)
    backend = YOLOBackend(settings)
    backend.store.start(background=False)
    yield create_app(backend).test_client(), root, samples
    backend.close()


def test_predict_gives_the_masks_ultralytics_gives(served) -> None:
    from ultralytics import YOLO
    from ultralytics.utils.ops import scale_masks

    client, root, samples = served
    direct_model = YOLO(str(root / "seg.pt"))
    counts, worst = [], 1.0
    for index, sample in enumerate(samples):
        task = {"id": index, "data": {"image": f"/data/local-files/?d={sample.path.name}"}}
        answer = client.post("/predict", json={"tasks": [task], "label_config": brush_config(), "project": "1.1"})
        assert answer.status_code == 200, answer.json
        ours = answer.json["results"][0]["result"]
        direct = direct_model.predict(str(sample.path), verbose=False)[0]
        counts.append((len(ours), len(direct.boxes)))
        assert len(ours) == len(direct.boxes) >= 1
        # Ultralytics' own masks, scaled to the displayed image: an independent reference
        theirs = scale_masks(direct.masks.data[None].float(), direct.orig_shape)[0].permute(1, 2, 0).numpy() > 0.5
        remaining = list(ours)
        for k, cls in enumerate(direct.boxes.cls.int().tolist()):
            assert all(r["type"] == "brushlabels" for r in remaining)
            scored = [(iou(masks.region_mask(r), theirs[:, :, k]), r) for r in remaining
                      if r["value"]["brushlabels"] == [NAMES[cls]]]
            best, region = max(scored, key=lambda pair: pair[0])
            worst = min(worst, best)
            assert best >= 0.9
            remaining.remove(region)
        assert (ours[0]["original_width"], ours[0]["original_height"]) == (sample.width, sample.height)
    print(f"\nregions ours/Ultralytics per image {counts}; worst mask IoU {worst:.3f}")


def test_predict_finds_the_drawn_masks(served) -> None:
    client, _, samples = served
    found = total = 0
    for index, sample in enumerate(samples):
        task = {"id": index, "data": {"image": f"/data/local-files/?d={sample.path.name}"}}
        ours = client.post("/predict", json={"tasks": [task], "label_config": brush_config(),
                                             "project": "1.1"}).json["results"][0]["result"]
        for (cls, _), truth in zip(sample.objects, sample.masks()):
            total += 1
            found += any(r["value"]["brushlabels"] == [NAMES[cls]] and iou(masks.region_mask(r), truth) >= 0.5
                         for r in ours)
    print(f"\ndrawn objects found (same class, mask IoU >= 0.5): {found}/{total}")
    assert found >= total - 1


def test_a_detect_checkpoint_behind_brushlabels_is_a_setup_error_naming_the_fix(served) -> None:
    client, _, _ = served
    client.post("/predict", json={"tasks": [], "label_config": brush_config("det.pt"), "project": "2.1"})  # loads it
    answer = client.post("/setup", json={"project": "2.1", "schema": brush_config("det.pt")})
    assert answer.status_code == 400, answer.json
    text = answer.json["message"]
    assert "'detect'" in text and "<BrushLabels>" in text and "segment checkpoint" in text and "model_path" in text
    assert client.post("/setup", json={"project": "3.1", "schema": brush_config()}).status_code == 200


# -- training ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_export_trains_one_epoch(dataset, imported, tmp_path: Path) -> None:
    from ultralytics import YOLO

    root, _ = dataset
    source = tmp_path / "export.json"
    source.write_text(json.dumps(imported))
    assert main(["export-yolo", "--from-file", str(source), "-o", str(tmp_path / "ds"), "--task", "segment",
                 "--classes", ",".join(NAMES), "--document-root", str(root), "--val", "0", "--no-progress"]) == 0
    YOLO("yolo11n-seg.yaml").train(data=str(tmp_path / "ds" / "data.yaml"), imgsz=64, epochs=1, batch=4, device="cpu",
                                   workers=0, plots=False, amp=False, val=False, verbose=False,
                                   project=str(tmp_path / "runs"), name="one", exist_ok=True)
    assert (tmp_path / "runs" / "one" / "weights" / "last.pt").is_file()


# Outlines (PolygonLabels) become segment rows (tests/formats/test_batch_export.py) like brush masks; segment rows
# train with Ultralytics in test_export_trains_one_epoch, and a brush project trains, is promoted and serves end to
# end through a real Label Studio in tests/e2e/test_kind_masks.py (a second full run here was CI time paid twice).
