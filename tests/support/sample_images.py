"""Generated shape photos with known boxes, some stored sideways behind an EXIF orientation tag.

A browser shows an image after applying its EXIF orientation, and Label Studio's percent boxes
refer to that displayed image. So the truth kept here is always in displayed pixels, while
the stored pixels of a tagged file are turned the other way: only a backend that applies the
tag finds the boxes where the truth says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from tests.support.synthetic import Shape, draw_sample

# EXIF orientation -> the transpose that stores a displayed image so the tag turns it back.
STORE_FOR_ORIENTATION = {
    1: None,
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,  # the viewer then turns it 90 degrees clockwise
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class Sample:
    """One written image: its file, the displayed size and the objects in displayed pixels."""

    path: Path
    width: int
    height: int
    shapes: tuple[Shape, ...]
    orientation: int


def write_sample(folder: Path, seed: int, orientation: int = 1, name: str | None = None) -> Sample:
    """Draw shapes (large enough for the quickly trained model) and save a JPEG with the orientation tag."""
    folder.mkdir(parents=True, exist_ok=True)
    displayed, shapes = draw_sample(seed, max_shapes=2, min_side=60, max_side=110)
    transpose = STORE_FOR_ORIENTATION[orientation]
    stored = displayed.transpose(transpose) if transpose is not None else displayed
    path = folder / (name or f"shapes-{seed:04d}-o{orientation}.jpg")
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation  # Orientation
    stored.save(path, quality=95, exif=exif.tobytes())
    _check_upright(path, displayed)
    return Sample(path, displayed.width, displayed.height, tuple(shapes), orientation)


def _check_upright(path: Path, displayed: Image.Image) -> None:
    """The file, once its tag is applied, must look like what was drawn (guards the table above)."""
    with Image.open(path) as img:
        upright = ImageOps.exif_transpose(img).convert("L").resize((32, 32))
    expected = displayed.convert("L").resize((32, 32))
    diff = sum(abs(a - b) for a, b in zip(upright.getdata(), expected.getdata())) / (32 * 32)
    if upright.size != expected.size or diff > 12:
        raise AssertionError(f"{path.name}: EXIF round trip does not give the drawn image (mean diff {diff:.1f})")


def write_samples(folder: Path, count: int, first_seed: int = 0, orientations: tuple[int, ...] = (1,)
                  ) -> list[Sample]:
    """``count`` samples, cycling through ``orientations``."""
    return [write_sample(folder, first_seed + i, orientations[i % len(orientations)]) for i in range(count)]


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def region_box(region: dict, width: int, height: int) -> tuple[float, float, float, float]:
    """A Label Studio rectangle result (percent of the displayed image) in displayed pixels."""
    v = region["value"]
    x1, y1 = v["x"] * width / 100, v["y"] * height / 100
    return x1, y1, x1 + v["width"] * width / 100, y1 + v["height"] * height / 100


def matched(sample: Sample, regions: list[dict], min_iou: float = 0.5) -> int:
    """How many of the sample's objects have a region of the same label with IoU >= ``min_iou``."""
    hits = 0
    for shape in sample.shapes:
        for region in regions:
            label = region["value"].get("rectanglelabels", [None])[0]
            if label == shape.label and iou(region_box(region, sample.width, sample.height), shape.box) >= min_iou:
                hits += 1
                break
    return hits
