"""YOLO folder -> Label Studio tasks: layouts, class names, EXIF, bad files, coco128."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import COCO128
from tests.support.region_boxes import region_box
from tests.support.synthetic import draw_sample, write_yolo_dataset, yolo_lines
from yolo_backend.cli import main
from yolo_backend.formats import convert
from yolo_backend.formats.ls_tasks import TaskFormat, convert_samples, local_files_url, prefixed_url
from yolo_backend.formats.yolo_folder import class_names, displayed_size, find_samples, read_labels
from yolo_backend.media.fetcher import open_image


def boxes_of(task: dict, key: str = "predictions") -> list[convert.YoloBox]:
    """The task's regions back as YOLO boxes, class ids by label name order in ``names``."""
    regions = task[key][0]["result"]
    names = {"square": 0, "circle": 1}
    return [region_box(r, names) for r in regions]


def assert_close(got: list[convert.YoloBox], want: list[convert.YoloBox], tol: float = 1e-4) -> None:
    assert len(got) == len(want)
    for a, b in zip(sorted(got, key=lambda b: (b.cx, b.cy)), sorted(want, key=lambda b: (b.cx, b.cy))):
        assert a.class_id == b.class_id
        for x, y in ((a.cx, b.cx), (a.cy, b.cy), (a.w, b.w), (a.h, b.h)):
            assert abs(x - y) <= tol, (a, b)


def test_ultralytics_layout_converts_every_box(tmp_path: Path) -> None:
    write_yolo_dataset(tmp_path / "ds", 6, 3)
    out = tmp_path / "tasks.json"
    assert main(["import-yolo", str(tmp_path / "ds"), "--document-root", str(tmp_path), "-o", str(out)]) == 0
    tasks = json.loads(out.read_text())
    assert len(tasks) == 9
    for task in tasks:
        relative = task["data"]["image"].split("?d=")[1]
        image = tmp_path / relative
        label = image.parents[2] / "labels" / image.parent.name / f"{image.stem}.txt"
        assert task["predictions"][0]["model_version"] == "yolo-import"
        assert_close(boxes_of(task), [b for b, _ in read_labels(label)])
        region = task["predictions"][0]["result"][0]
        assert (region["original_width"], region["original_height"]) == Image.open(image).size


@pytest.mark.parametrize("nested", [True, False], ids=["split/images", "split/flat"])
def test_split_folder_layouts_and_classes_txt(tmp_path: Path, nested: bool) -> None:
    for split, seeds in (("train", (1, 2)), ("valid", (3,))):
        for seed in seeds:
            img, shapes = draw_sample(seed)
            folder = tmp_path / split / ("images" if nested else "")
            folder.mkdir(parents=True, exist_ok=True)
            img.save(folder / f"s{seed}.png")
            (tmp_path / split / "labels").mkdir(exist_ok=True)
            (tmp_path / split / "labels" / f"s{seed}.txt").write_text("\n".join(yolo_lines(shapes, *img.size)))
    (tmp_path / "classes.txt").write_text("square\ncircle\n")
    samples = find_samples(tmp_path)
    assert [(s.image.name, s.split, s.label is not None) for s in samples] == [
        ("s1.png", "train", True), ("s2.png", "train", True), ("s3.png", "valid", True)]
    assert class_names(tmp_path) == {0: "square", 1: "circle"}
    assert class_names(tmp_path, ["a", "b"]) == {0: "a", 1: "b"}


def test_flat_layout_and_data_yaml_list(tmp_path: Path) -> None:
    img, shapes = draw_sample(7)
    img.save(tmp_path / "a.jpg")
    (tmp_path / "a.txt").write_text("\n".join(yolo_lines(shapes, *img.size)))
    (tmp_path / "data.yaml").write_text("names: [square, circle]\n")
    [sample] = find_samples(tmp_path)
    assert sample.label == tmp_path / "a.txt" and sample.split == ""
    assert class_names(tmp_path) == {0: "square", 1: "circle"}


def test_no_names_anywhere_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--classes"):
        class_names(tmp_path)


def fmt(**changes) -> TaskFormat:
    return TaskFormat(**changes)


def test_exif_rotated_image_gets_displayed_coordinates(tmp_path: Path) -> None:
    """A photo stored landscape with orientation 6 shows portrait: sizes and boxes follow the display."""
    displayed = Image.new("RGB", (200, 300), "white")
    displayed.paste((255, 0, 0), (20, 200, 80, 280))  # red box, displayed pixels x1,y1,x2,y2
    stored = displayed.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote: 300 x 200
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display", undoing the ROTATE_90 (counter-clockwise) above
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    label = convert.YoloBox(0, 50 / 200, 240 / 300, 60 / 200, 80 / 300)
    (tmp_path / "photo.txt").write_text(convert.format_yolo_line(label) + "\n")

    assert displayed_size(tmp_path / "photo.jpg") == (200, 300)
    upright = open_image(tmp_path / "photo.jpg", 10**8)
    assert upright.size == (200, 300)
    assert upright.getpixel((50, 240))[0] > 200 and upright.getpixel((150, 50))[0] > 200  # red there, white here
    done = convert_samples(find_samples(tmp_path), {0: "square"}, fmt(), lambda p: p.name, progress=False)
    [region] = done.tasks[0]["predictions"][0]["result"]
    assert (region["original_width"], region["original_height"]) == (200, 300)
    value = region["value"]
    assert (value["x"], value["y"], value["width"], value["height"]) == pytest.approx((10, 66.6667, 30, 26.6667),
                                                                                      abs=1e-3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_header_size_agrees_with_decoded_size(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (64, 40)).save(tmp_path / "x.jpg", exif=exif)
    assert displayed_size(tmp_path / "x.jpg") == open_image(tmp_path / "x.jpg", 10**8).size


def test_bad_files_are_reported_with_path_and_skipped(tmp_path: Path) -> None:
    write_yolo_dataset(tmp_path, 3, 0)
    labels, images = tmp_path / "labels" / "train", tmp_path / "images" / "train"
    (labels / "00000.txt").write_text("0 0.5 0.5 0.2\n")  # a column short
    (labels / "00001.txt").write_text("7 0.5 0.5 0.2 0.2\n")  # class without a name
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "tasks.json"
    code = main(["import-yolo", str(tmp_path), "--url-prefix", "https://example.com/ds", "-o", str(out)])
    assert code == 1  # finished, some items failed
    tasks = json.loads(out.read_text())
    assert [t["data"]["image"] for t in tasks] == ["https://example.com/ds/images/train/00002.jpg"]
    done = convert_samples(find_samples(tmp_path), {0: "square", 1: "circle"}, fmt(), str, progress=False)
    failed = {path.name: reason for path, reason in done.failed}
    assert failed["00000.txt"].startswith("line 1:")
    assert "class 7 has no name" in failed["00001.txt"]
    assert "not a readable image" in failed["broken.jpg"]


@pytest.mark.parametrize("missing, expected", [("empty", [[]]), ("skip", []), ("whole", [[(0, 0, 100, 100)]])])
def test_image_without_label_file(tmp_path: Path, missing: str, expected: list) -> None:
    Image.new("RGB", (50, 40)).save(tmp_path / "lonely.png")
    done = convert_samples(find_samples(tmp_path), {0: "square"}, fmt(missing=missing), str, progress=False)
    got = [[(r["value"]["x"], r["value"]["y"], r["value"]["width"], r["value"]["height"])
            for r in t["predictions"][0]["result"]] for t in done.tasks]
    assert got == expected
    assert len(done.skipped) == (1 if missing == "skip" else 0)


def test_polygons_and_annotations_and_scores(tmp_path: Path) -> None:
    Image.new("RGB", (100, 50)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("1 0.5 0.5 0.2 0.4 0.87\n")  # a detector's output with its score
    done = convert_samples(find_samples(tmp_path), {0: "square", 1: "circle"},
                           fmt(kind="polygonlabels", as_annotations=True), str, progress=False)
    [region] = done.tasks[0]["annotations"][0]["result"]
    assert region["type"] == "polygonlabels" and region["value"]["polygonlabels"] == ["circle"]
    assert region["value"]["points"] == [[40.0, 30.0], [60.0, 30.0], [60.0, 70.0], [40.0, 70.0]]
    assert region["score"] == 0.87
    assert_close([region_box(region, {"circle": 1})], [convert.YoloBox(1, 0.5, 0.5, 0.2, 0.4)])


def test_urls(tmp_path: Path) -> None:
    image = tmp_path / "my set" / "a&b.jpg"
    assert local_files_url(image, tmp_path) == "/data/local-files/?d=my%20set/a%26b.jpg"
    assert prefixed_url(image, tmp_path, "s3://bucket/x/") == "s3://bucket/x/my%20set/a%26b.jpg"
    with pytest.raises(ValueError, match="not under the document root"):
        local_files_url(Path("/elsewhere/a.jpg"), tmp_path)


def test_every_coordinate_has_the_same_precision(tmp_path: Path) -> None:
    Image.new("RGB", (300, 300)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("0 0.123456789 0.333333333 0.111111111 0.2222222\n")
    done = convert_samples(find_samples(tmp_path), {0: "square"}, fmt(), str, progress=False)
    value = done.tasks[0]["predictions"][0]["result"][0]["value"]
    for key in ("x", "y", "width", "height"):
        assert value[key] == round(value[key], convert.PERCENT_DECIMALS)
        assert len(repr(value[key]).split(".")[1]) == convert.PERCENT_DECIMALS


def test_coco128_converts_and_every_box_matches_its_label_file(tmp_path: Path) -> None:
    if not (COCO128 / "images").is_dir():
        pytest.skip(f"coco128 not found at {COCO128} (optional real-data check)")
    samples = find_samples(COCO128)
    names = class_names(COCO128)
    done = convert_samples(samples, names, fmt(), lambda p: local_files_url(p, COCO128.parent), progress=False)
    assert len(samples) == 128 and not done.failed
    ids = {name: index for index, name in names.items()}
    by_url = {t["data"]["image"]: t for t in done.tasks}
    checked = 0
    for sample in samples:
        task = by_url[local_files_url(sample.image, COCO128.parent)]
        want = [b for b, _ in read_labels(sample.label)] if sample.label else []
        got = [region_box(r, ids) for r in task["predictions"][0]["result"]]
        assert_close(got, want)
        size = open_image(sample.image, 10**8).size
        for region in task["predictions"][0]["result"]:
            assert (region["original_width"], region["original_height"]) == size
        checked += len(want)
    assert checked == done.boxes > 900
