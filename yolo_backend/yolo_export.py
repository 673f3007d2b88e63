"""Label Studio annotations -> an Ultralytics-layout YOLO dataset, ready for ``yolo train``.

Input is Label Studio's JSON export (a file, or fetched from a project by ``ls_client``).
Per task the ground-truth annotation wins, else the latest one; skipped (cancelled)
annotations are left out. The split is a hash of the task id, so the same task lands in
the same split on every run, and adding tasks never moves old ones.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from PIL import Image

from .training.collect import chosen_annotation  # the same rule training uses

__all__ = ["chosen_annotation"]

from .convert import format_yolo_line, region_to_yolo
from .progress import bar
from .yolo_folder import IMAGE_SUFFIXES

BOX_TYPES = ("rectanglelabels", "polygonlabels")


@dataclass
class Export:
    """What was written: images per split, boxes, and tasks left out with the reason."""

    splits: Counter = field(default_factory=Counter)
    boxes: int = 0
    left_out: list[tuple[Any, str]] = field(default_factory=list)

    def summary(self) -> str:
        per_split = ", ".join(f"{name} {count}" for name, count in sorted(self.splits.items())) or "none"
        return f"{sum(self.splits.values())} images ({per_split}), {self.boxes} boxes; {len(self.left_out)} left out"


def label_names(tasks: Iterable[dict[str, Any]]) -> list[str]:
    """Every box label used in the kept annotations, sorted (used when no class list is given)."""
    seen: set[str] = set()
    for task in tasks:
        for region in (chosen_annotation(task) or {}).get("result") or []:
            if region.get("type") in BOX_TYPES:
                seen.update((region.get("value") or {}).get(region["type"]) or [])
    return sorted(seen)


def split_of(key: Any, val: float, test: float) -> str:
    """train / val / test from a hash of ``key``: stable across runs and machines."""
    share = int(hashlib.sha256(str(key).encode()).hexdigest()[:8], 16) / 2**32
    return "test" if share < test else "val" if share < test + val else "train"


def image_name(url: str) -> str:
    """The file name a task URL points at (local-files ``?d=``, upload path or any URL)."""
    parts = urlsplit(url)
    inner = parse_qs(parts.query).get("d")
    name = PurePosixPath(unquote(inner[0] if inner else parts.path)).name
    return name or hashlib.sha256(url.encode()).hexdigest()[:16]


def task_labels(task: dict[str, Any], class_ids: dict[str, int], from_name: str | None) -> list[str]:
    """YOLO lines of the task's chosen annotation (boxes of unknown labels are dropped)."""
    lines = []
    for region in (chosen_annotation(task) or {}).get("result") or []:
        if region.get("type") not in BOX_TYPES or (from_name and region.get("from_name") != from_name):
            continue
        box = region_to_yolo(region, class_ids)
        if box is not None:
            lines.append(format_yolo_line(box))
    return lines


@dataclass(frozen=True)
class ExportOptions:
    data_key: str | None = None  # task data field holding the image; None = the only/first one
    from_name: str | None = None  # only this control's regions; None = every box control
    val: float = 0.2
    test: float = 0.0


def write_dataset(tasks: Sequence[dict[str, Any]], out: Path, names: Sequence[str],
                  fetch: Callable[[str, Any], Path], options: ExportOptions = ExportOptions(),
                  progress: bool | None = None) -> Export:
    """Images and labels under ``out/images|labels/<split>``, plus ``data.yaml`` and ``classes.txt``."""
    _check_empty(out)
    class_ids = {name: index for index, name in enumerate(names)}
    report, used = Export(), set()
    for task in bar(tasks, "tasks", "task", show=progress):
        tid = task.get("id")
        if chosen_annotation(task) is None:
            report.left_out.append((tid, "no annotation (or only skipped ones)"))
            continue
        try:
            url = _image_url(task, options.data_key)
            source = fetch(url, tid)
            split = split_of(tid if tid is not None else url, options.val, options.test)
            name = _unique(split, _with_suffix(image_name(url), source), tid if tid is not None else url, used)
        except Exception as exc:  # one bad task never stops the export
            report.left_out.append((tid, f"{type(exc).__name__}: {exc}"))
            continue
        lines = task_labels(task, class_ids, options.from_name)
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out / "images" / split / name)  # EXIF kept: trainers apply it, as the browser did
        (out / "labels" / split / f"{Path(name).stem}.txt").write_text("".join(f"{line}\n" for line in lines))
        report.splits[split] += 1
        report.boxes += len(lines)
    write_data_yaml(out, names, report.splits)
    return report


def write_data_yaml(out: Path, names: Sequence[str], splits: Counter) -> Path:
    """Ultralytics' dataset file; with no val images, val points at train so training still runs."""
    out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"path": str(out.resolve()), "train": "images/train",
                            "val": "images/val" if splits.get("val") else "images/train"}
    if splits.get("test"):
        data["test"] = "images/test"
    data["names"] = dict(enumerate(names))
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in names))
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def _image_url(task: dict[str, Any], data_key: str | None) -> str:
    data = task.get("data") or {}
    key = data_key or next(iter(data), None)
    url = data.get(key) if key else None
    if not isinstance(url, str) or not url:
        raise ValueError(f"task data has no image URL under {key!r}: pass --data-key")
    return url


def _with_suffix(name: str, source: Path) -> str:
    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
        return name
    with Image.open(source) as img:  # e.g. a URL without extension: name it by its real format
        return f"{name}.{(img.format or 'jpg').lower()}"


def _unique(split: str, name: str, key: Any, used: set[tuple[str, str]]) -> str:
    """Two tasks with the same file name in one split: the later one gets a short hash of its key in front."""
    stem = Path(name).stem
    if (split, stem) in used:
        name = f"{hashlib.sha256(str(key).encode()).hexdigest()[:8]}-{name}"
    used.add((split, Path(name).stem))
    return name


def _check_empty(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: give a new folder, so old images cannot mix into the dataset")
