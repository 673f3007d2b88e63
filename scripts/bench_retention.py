"""MODEL_DIR's size over many training runs of one project, with retention as it ships.

    .venv/bin/python scripts/bench_retention.py [--runs 20] [--keep 3] [--min-gain 0] [--runtime auto]

Generates a shapes project (12 images of 128 px) and a base yolov5nu with random weights,
then runs ``yolo_backend.training.job.run_job`` in this process ``--runs`` times back to
back (TRAIN_IMGSZ 64, 1 epoch), changing a few annotations before each run as annotators
would; with PROMOTE_MIN_GAIN 0 (``--min-gain``) many runs promote. After every run it
prints the run's outcome and MODEL_DIR's disk use (as ``du``: allocated blocks, hard links
once), split into checkpoints, exports, training images and the rest. Nothing but the
public path is called: what gets deleted is whatever the shipped recipe's retention
deletes with KEEP_VERSIONS=``--keep``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")  # Ultralytics: no update checks or downloads
os.environ.setdefault("YOLO_VERBOSE", "False")

from tests.support.shapes_project import export_file, write_project  # noqa: E402
from yolo_backend.config import Settings  # noqa: E402
from yolo_backend.core.registry import Registry, project_dir  # noqa: E402
from yolo_backend.core.status import StatusBook  # noqa: E402
from yolo_backend.training.job import run_job  # noqa: E402

PROJECT = "1"
MB = 2**20


def disk_use(folder: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes allocated under ``folder``, each inode once (``du -s`` without the folders themselves)."""
    seen = set() if seen is None else seen
    total = 0
    for path in folder.rglob("*") if folder.is_dir() else []:
        st = path.lstat()
        if path.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def breakdown(model_dir: Path) -> dict[str, int]:
    """MODEL_DIR's disk use by kind; inodes counted in an earlier part are not counted again."""
    project = project_dir(model_dir, PROJECT)
    seen: set[tuple[int, int]] = set()
    parts = {"checkpoints": disk_use(project / "versions", seen), "exports": disk_use(model_dir / "runtime", seen),
             "images": disk_use(project / "training-images", seen) + disk_use(model_dir / "training-images", seen)}
    parts["other"] = disk_use(model_dir, seen)
    parts["total"] = sum(parts.values())
    return parts


def change_annotations(tasks: list[dict], rng: random.Random, count: int = 3) -> None:
    """``count`` tasks get their first box nudged by up to 4 % of the image, as a reviewer's correction."""
    for task in rng.sample(tasks, count):
        result = task["annotations"][0]["result"]
        if not result:
            continue
        value = result[0]["value"]
        value["x"] = min(max(value["x"] + rng.uniform(-4, 4), 0), 100 - value["width"])
        value["y"] = min(max(value["y"] + rng.uniform(-4, 4), 0), 100 - value["height"])
        task["annotations"][0]["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def base_model(folder: Path) -> Path:
    """yolov5nu with random weights, built offline from its yaml (as the tests' model root)."""
    from ultralytics import YOLO

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "yolov5nu.pt"
    YOLO("yolov5nu.yaml").save(str(path))
    return path


def row(number: int | str, outcome: str, served: str, parts: dict[str, int], seconds: float) -> str:
    sizes = "".join(f"{parts[k] / MB:>11.1f}" for k in ("checkpoints", "exports", "images", "other", "total"))
    return f"{number!s:>4} {outcome:<10} {served:<9}{sizes}{seconds:>8.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", type=int, default=3, help="KEEP_VERSIONS")
    parser.add_argument("--min-gain", type=float, default=0.0, help="PROMOTE_MIN_GAIN (0: ties promote)")
    parser.add_argument("--runtime", default="auto", help="RUNTIME: auto exports ONNX when onnxruntime is there")
    parser.add_argument("--work", type=Path, default=None, help="folder for everything (default: a temp folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-retention-"))
    base_model(work / "root")
    tasks = write_project(work / "docroot", 12, size=(128, 128), max_shapes=2)
    settings = Settings.from_env({}, model_root=str(work / "root"), model_path="yolov5nu.pt",
                                 model_dir=str(work / "models"), local_files_document_root=str(work / "docroot"),
                                 device="cpu", train_imgsz=64, train_epochs=1, train_batch=4, train_patience=50,
                                 train_min_images=10, keep_versions=args.keep, promote_min_gain=args.min_gain,
                                 runtime=args.runtime)
    rng = random.Random(0)
    print(f"MODEL_DIR {settings.model_dir_path}, KEEP_VERSIONS={args.keep}, {args.runs} runs")
    print(f"{'run':>4} {'outcome':<10} {'served':<9}{'ckpt MB':>11}{'export MB':>11}{'images MB':>11}"
          f"{'other MB':>11}{'total MB':>11}{'secs':>8}")
    for number in range(1, args.runs + 1):
        change_annotations(tasks, rng)
        source = export_file(work / "export.json", tasks)
        started = time.monotonic()
        outcome = run_job(PROJECT, None, source, settings)
        served = (Registry(settings.model_dir_path, PROJECT).served() or {}).get("version") or "-"
        print(row(number, outcome, served, breakdown(settings.model_dir_path), time.monotonic() - started),
              flush=True)
        if outcome == "failed":
            print(f"     {StatusBook(settings.model_dir_path, PROJECT).last().reason}")
    versions = Registry(settings.model_dir_path, PROJECT).load()["versions"]
    on_disk = [v["version"] for v in versions if not v.get("removed")]
    print(f"end: {len(versions)} versions promoted, {len(on_disk)} on disk ({', '.join(on_disk) or 'none'}); "
          f"MODEL_DIR {breakdown(settings.model_dir_path)['total'] / MB:.1f} MB")


if __name__ == "__main__":
    main()
