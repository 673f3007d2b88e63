"""Reading a folder of images with YOLO text labels, in the layouts people actually have.

Layouts found by one rule per image, so mixed trees work too:
- Ultralytics: ``images/<split>/a.jpg`` with ``labels/<split>/a.txt`` (the last ``images``
  folder of the path swapped for ``labels``);
- split folders: ``train/a.jpg`` or ``train/images/a.jpg`` with ``train/labels/a.txt``;
- flat: ``a.jpg`` beside ``a.txt``.
Class names come from ``data.yaml`` (list or mapping), ``classes.txt``, or the caller.

Writing is here too, once for every dataset this package makes (a training run's, the
review's folds, ``yolo-ls export-yolo``'s): ``write_sample`` puts an image and its rows in
Ultralytics' layout (``write_class_sample``: in its class folders), ``write_data_yaml`` the
dataset file Ultralytics reads.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml
from PIL import Image, UnidentifiedImageError

from .convert import YoloBox, parse_yolo_line

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
NAME_FILES = ("data.yaml", "dataset.yaml", "data.yml", "classes.txt", "labels/classes.txt")
EXIF_ORIENTATION = 0x0112
SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # transposed or rotated by 90/270 degrees


@dataclass(frozen=True)
class Sample:
    """One image of the folder, its label file (None when there is none) and its split name."""

    image: Path
    label: Path | None
    split: str


def find_samples(root: Path) -> list[Sample]:
    """Every image under ``root`` (sorted, so runs are reproducible) with its label file."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: give the folder holding the images and labels")
    samples = []
    for image in sorted(_images(root)):
        relative = image.relative_to(root)
        samples.append(Sample(image, _label_for(image, relative), _split_of(relative)))
    return samples


def _images(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and "labels" not in path.relative_to(root).parts:
            yield path


def _label_for(image: Path, relative: Path) -> Path | None:
    """The first existing label file among the layouts' conventions."""
    parts = relative.parts
    candidates = []
    if "images" in parts[:-1]:
        index = len(parts) - 2 - parts[-2::-1].index("images")  # the last "images" folder
        swapped = Path(*parts[:index], "labels", *parts[index + 1:]).with_suffix(".txt")
        candidates.append(image.parents[len(parts) - 1] / swapped)
    candidates += [image.parent / "labels" / f"{image.stem}.txt", image.with_suffix(".txt")]
    return next((c for c in candidates if c.is_file()), None)


def _split_of(relative: Path) -> str:
    """``images/<split>/x`` -> split; ``<split>/[images/]x`` -> split; a flat folder -> ''."""
    folders = relative.parts[:-1]
    if folders and folders[0] == "images":
        return folders[1] if len(folders) > 1 else ""
    return folders[0] if folders else ""


def read_labels(path: Path) -> list[tuple[YoloBox, float | None]]:
    """The rows of one label file, parsed, with their score (a detector's 6th column, else None).

    A box row or a segment row (its box, and its points for ``kinds.outlines``); the kind
    asked for turns each into a Label Studio value (``kinds.label_to_region``). ValueError
    naming the line when one is malformed or out of range.
    """
    boxes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            box = parse_yolo_line(line)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
        if box.class_id < 0 or box.w < 0 or box.h < 0:
            raise ValueError(f"line {number}: negative class or size in {line.strip()!r}")
        if not all(-0.01 <= v <= 1.01 for v in (box.cx, box.cy, box.w, box.h)):
            raise ValueError(f"line {number}: coordinates must be relative (0..1), got {line.strip()!r}")
        columns = line.split()
        boxes.append((box, float(columns[5]) if len(columns) == 6 else None))
    return boxes


def displayed_size(path: Path) -> tuple[int, int]:
    """(width, height) as a browser shows the image: EXIF orientations 5-8 swap the sides.

    Reads the header only, so thousands of images are sized without decoding them;
    ``media.open_image`` decodes and agrees (tested).
    """
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"not a readable image: {exc}") from None
    return (height, width) if orientation in SWAPPING_ORIENTATIONS else (width, height)


def class_names(root: Path, given: Sequence[str] | None = None) -> dict[int, str]:
    """Class index -> name: given names win, then the first name file found in ``root``."""
    if given:
        return dict(enumerate(given))
    for name in NAME_FILES:
        path = Path(root) / name
        if path.is_file():
            return _names_from(path)
    raise FileNotFoundError(
        f"no data.yaml or classes.txt in {root}: add one, or pass the names with --classes person,car,...")


def _names_from(path: Path) -> dict[int, str]:
    if path.suffix == ".txt":
        return dict(enumerate(line.strip() for line in path.read_text().splitlines() if line.strip()))
    names = (yaml.safe_load(path.read_text()) or {}).get("names")
    if isinstance(names, list):
        return dict(enumerate(str(n) for n in names))
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items()}
    raise ValueError(f"{path} has no 'names' list or mapping: add names: [cat, dog] or pass --classes")


def keypoint_names(root: Path) -> list[str]:
    """A pose dataset's keypoint names: data.yaml ``kpt_names`` (Ultralytics: per class; the first class's)."""
    for name in NAME_FILES:
        path = Path(root) / name
        if path.suffix in (".yaml", ".yml") and path.is_file():
            names = (yaml.safe_load(path.read_text()) or {}).get("kpt_names")
            if isinstance(names, dict) and names:
                names = names[sorted(names)[0]]
            if isinstance(names, list):
                return [str(n) for n in names]
    return []


# -- writing a dataset: samples in Ultralytics' layout, and its data.yaml ------------------------
Place = Callable[[Path, Path], Any]  # (source, target): copy, hard link or move an image into the dataset


def write_sample(out: Path, split: str, file_name: str, source: Path, rows: Iterable[str],
                 put: Place = shutil.copyfile) -> None:
    """``source`` as ``images/<split>/<file_name>`` (by ``put``), its rows in ``labels/<split>/<stem>.txt``."""
    images, labels = out / "images" / split, out / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    put(source, images / file_name)
    (labels / f"{Path(file_name).stem}.txt").write_text("".join(f"{row}\n" for row in rows))


def write_class_sample(out: Path, split: str, file_name: str, source: Path, rows: Iterable[str],
                       names: Sequence[str], put: Place = shutil.copyfile) -> None:
    """``source`` in ``<split>/<class>/`` of each class its rows name (an image with several choices sits in each)."""
    for row in dict.fromkeys(rows):
        folder = out / split / class_folder_name(names[int(row.split()[0])])
        folder.mkdir(parents=True, exist_ok=True)
        put(source, folder / file_name)


def write_data_yaml(out: Path, names: Sequence[str], splits: Iterable[str] = ("train", "val"),
                    fields: dict[str, Any] | None = None, folders: bool = False) -> Path:
    """Ultralytics' dataset file, by ``yaml.safe_dump``: any label text (``:``, ``#``, quotes) reads back as written.

    ``splits``: the parts written; without ``val``, val points at train (Ultralytics needs
    one), ``test`` when there is one. ``fields``: the task's own keys (pose: ``kpt_shape``,
    ``flip_idx``). A class-folder dataset (``folders``) is trained from its folder; its
    data.yaml only records the names.
    """
    written, prefix = set(splits), "" if folders else "images/"
    data: dict[str, Any] = {"path": str(out.resolve()), "train": f"{prefix}train",
                            "val": f"{prefix}val" if "val" in written else f"{prefix}train"}
    if "test" in written:
        data["test"] = f"{prefix}test"
    data.update(fields or {})
    data["names"] = dict(enumerate(names))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


# -- class folders (Ultralytics classify datasets) ------------------------------------------------
SPLIT_FOLDERS = ("train", "val", "valid", "test")  # the split folders Ultralytics' classify loader knows


@dataclass(frozen=True)
class ClassSample(Sample):
    """An image of a class-folder tree: no label file; ``rows`` hold its class index (``kinds.classes``)."""

    rows: tuple[str, ...] = ()


def class_folder_name(label: str) -> str:
    """A label as a folder name: path separators and leading dots cannot name a folder."""
    return label.replace("/", "\u2215").replace("\\", "\u2216").lstrip(".") or "_"


def class_folder_names(root: Path) -> list[str]:
    """The classes of ``<root>/[<split>/]<class>/<image>``: every class folder's name, sorted, as Ultralytics does.

    Empty class folders count: Ultralytics numbers the classes by the folders, not the images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: give the folder holding the class folders")
    names: set[str] = set()
    for folder in (p for p in root.iterdir() if p.is_dir()):
        if folder.name in SPLIT_FOLDERS:
            names |= {p.name for p in folder.iterdir() if p.is_dir()}
        else:
            names.add(folder.name)
    if not names:
        raise ValueError(f"no class folders in {root}: expected <split>/<class>/<image> or <class>/<image>")
    return sorted(names)


def find_class_samples(root: Path, names: dict[int, str]) -> list[ClassSample]:
    """Every image of a class-folder tree (sorted), its class folder's index in ``names`` as its row.

    ``<split>/<class>/<image>`` (split: train, val, valid, test) or ``<class>/<image>``; an image
    straight under ``root`` or a split has no class (no rows). ValueError naming the folders
    that are not one of ``names``.
    """
    root = Path(root)
    index = {name: class_id for class_id, name in names.items()}
    samples, unknown = [], set()
    for image in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        folders = image.relative_to(root).parts[:-1]
        split = folders[0] if folders and folders[0] in SPLIT_FOLDERS else ""
        classed = folders[1:] if split else folders
        folder = classed[-1] if classed else None  # None: straight under the root or a split
        if folder is not None and folder not in index:
            unknown.add(folder)
            continue
        rows = (str(index[folder]),) if folder is not None else ()
        samples.append(ClassSample(image, None, split, rows))
    if unknown:
        raise ValueError(f"class folders {', '.join(sorted(unknown))} are not among the classes "
                         f"({', '.join(names.values())}): add them to --classes, or leave --classes out")
    return samples
