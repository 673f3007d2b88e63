"""Does ``yolo-ls review`` find corrupted annotations? Precision and recall per kind and of the top-N list.

A generated project of shapes (tests/support/shapes_project.py) whose annotations are
exact; a share of its tasks (default 10 %) gets one corruption each, the four kinds in
turn: a box removed (missed object), a box added on empty background (box where there is
nothing), a class flipped (wrong class), a box grown 1.5-1.9x about its centre (loose box).
The true boxes are kept aside. The review runs exactly as the CLI's (``review_tasks``:
k-fold models by the product's training recipe, cleanlab's scores, our flag rules) on the
corrupted tasks, and every flag is checked against what was done:

- a flag is right when its task got that kind of corruption at that box (IoU >= 0.5);
- recall of a kind: corrupted boxes of that kind flagged with it;
- tasks: flagged tasks vs corrupted tasks; top-N: the N worst tasks by quality, N = corrupted.

The fold models start from the cached shapes model (trained on other generated images),
standing in for the COCO weights a real project starts from; ``--start yolov5nu.yaml``
trains them from random weights instead, a harder case. Fold models and predictions
are kept under --work, so a second run only re-scores (try other --confident values).

    .venv/bin/python scripts/bench_review.py --images 300 --epochs 5
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.shapes_project import LABEL_CONFIG, region, write_project
from tests.support.synthetic import CLASSES, Shape
from yolo_backend.overlap import box_iou
from yolo_backend.review import flags

SIZE = 256  # write_project's images: 256 x 256


@dataclass(frozen=True)
class Corruption:
    """What was done to one task, and where (pixels)."""

    task_id: int
    kind: str
    box: tuple[float, float, float, float]


def corrupt(tasks: list[dict[str, Any]], share: float, seed: int) -> list[Corruption]:
    """One corruption on ``share`` of the tasks, the kinds in turn; changes the tasks in place."""
    rng = random.Random(seed)
    chosen = rng.sample(range(len(tasks)), round(share * len(tasks)))
    done = []
    for n, index in enumerate(chosen):
        task = tasks[index]
        results = task["annotations"][0]["result"]
        kind = flags.KINDS[n % len(flags.KINDS)]
        if kind == "spurious":
            box = _empty_spot(task["_truth"], rng)
            results.append(region(Shape(rng.randrange(len(CLASSES)), box), SIZE, SIZE))
        else:
            j = rng.randrange(len(results))
            value = results[j]["value"]
            box = _pixels(value)
            if kind == "missed":
                del results[j]
            elif kind == "wrong_class":
                value["rectanglelabels"] = [CLASSES[1 - CLASSES.index(value["rectanglelabels"][0])]]
            else:
                box = _grown(box, rng.uniform(1.5, 1.9))
                value.update(x=box[0] / SIZE * 100, y=box[1] / SIZE * 100, width=(box[2] - box[0]) / SIZE * 100,
                             height=(box[3] - box[1]) / SIZE * 100)
        done.append(Corruption(task["id"], kind, box))
    return done


def _pixels(value: dict[str, float]) -> tuple[float, float, float, float]:
    x, y = value["x"] * SIZE / 100, value["y"] * SIZE / 100
    return x, y, x + value["width"] * SIZE / 100, y + value["height"] * SIZE / 100


def _grown(box: tuple[float, ...], factor: float) -> tuple[float, float, float, float]:
    cx, cy, w, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]
    x1, y1 = max(0.0, cx - w * factor / 2), max(0.0, cy - h * factor / 2)
    return x1, y1, min(SIZE, cx + w * factor / 2), min(SIZE, cy + h * factor / 2)


def _empty_spot(truth: list[tuple[int, tuple[int, ...]]], rng: random.Random) -> tuple[int, int, int, int]:
    """A box of a shape's size on background only (the last try is taken if none is free)."""
    for _ in range(200):
        side = rng.randrange(32, 97)
        x, y = rng.randrange(0, SIZE - side), rng.randrange(0, SIZE - side)
        box = (x, y, x + side, y + side)
        if all(box[2] + 6 <= b[0] or b[2] + 6 <= box[0] or box[3] + 6 <= b[1] or b[3] + 6 <= box[1]
               for _, b in truth):
            return box
    return box


def hits(flag: flags.Flag, corruption: Corruption | None) -> bool:
    if corruption is None or corruption.kind != flag.kind:
        return False
    return float(box_iou(_array(flag.box), _array(corruption.box))[0, 0]) >= 0.5


def _array(box: tuple[float, ...]) -> Any:
    import numpy as np

    return np.array([box], float)


def ratio(a: int, b: int) -> str:
    return f"{a / b:.2f} ({a}/{b})" if b else "-"


def report(review: Any, corruptions: list[Corruption], elapsed: float) -> None:
    by_task = {c.task_id: c for c in corruptions}
    print(f"\n{len(review.verdicts)} tasks reviewed, {len(corruptions)} corrupted, review took {elapsed:.0f} s "
          f"(version {review.version})")
    print(f"{'kind':<28}{'corrupted':>10}{'flagged':>9}  {'precision':<16}{'recall':<16}")
    for kind in flags.KINDS:
        raised = [(t, f) for t, v in review.verdicts.items() for f in v.flags if f.kind == kind]
        right = sum(hits(f, by_task.get(t)) for t, f in raised)
        wanted = [c for c in corruptions if c.kind == kind]
        found = sum(any(hits(f, c) for f in review.verdicts[c.task_id].flags) for c in wanted
                    if c.task_id in review.verdicts)
        print(f"{flags.DESCRIPTION[kind]:<28}{len(wanted):>10}{len(raised):>9}  {ratio(right, len(raised)):<16}"
              f"{ratio(found, len(wanted)):<16}")
    for warning in review.warnings:
        print(f"warning: {warning}")
    flagged = {t for t, v in review.verdicts.items() if v.flags}
    right = len(flagged & set(by_task))
    print(f"{'tasks (any flag)':<28}{len(by_task):>10}{len(flagged):>9}  {ratio(right, len(flagged)):<16}"
          f"{ratio(right, len(by_task)):<16}")
    ranked = sorted(review.verdicts, key=lambda t: review.verdicts[t].quality)
    for n in (len(by_task), 2 * len(by_task)):
        top = set(ranked[:n]) & set(by_task)
        print(f"{f'top-{n} by quality':<28}{len(by_task):>10}{n:>9}  {ratio(len(top), n):<16}"
              f"{ratio(len(top), len(by_task)):<16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--corrupt", type=float, default=0.10, help="share of tasks given one corruption")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--confident", type=float, default=flags.Rules.confident)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", help="start of the fold models (default: the cached shapes model; "
                                        "yolov5nu.yaml: random weights, a harder case)")
    parser.add_argument("--work", type=Path, help="keep images, fold models and predictions here (default: temp)")
    args = parser.parse_args()

    from tests.support.trained_model import trained_shapes_model
    from yolo_backend.config import Settings
    from yolo_backend.media import MediaFetcher
    from yolo_backend.review.folds import Plan
    from yolo_backend.review.project import review_tasks

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-review-"))
    clean = write_project(work / "images", args.images, seed=70_000 + 1000 * args.seed)
    tasks = copy.deepcopy(clean)
    corruptions = corrupt(tasks, args.corrupt, args.seed)
    settings = Settings.from_env(model_dir=str(work / "state"), local_files_document_root=str(work / "images"),
                                 imgsz="auto", device="cpu")
    plan = Plan(args.folds, args.epochs, args.imgsz, 8, args.start or str(trained_shapes_model()))
    started = time.monotonic()
    review = review_tasks(tasks, LABEL_CONFIG, settings, MediaFetcher.from_settings(settings), plan,
                          flags.Rules(confident=args.confident), work / "review", progress=True)
    report(review, corruptions, time.monotonic() - started)


if __name__ == "__main__":
    main()
