"""Does ``yolo-ls review`` find corrupted annotations, on objects unlike the easy shapes? Per kind, over seeds.

Each seed generates a project of shapes chosen to be hard for the flag rules: short sides
down to 12 px at the review's image size (``--imgsz``), a third of the objects elongated
(aspect 1.8-3.5, squares drawn as bars, circles as ellipses), a third placed touching a
neighbour, a quarter of the images crowded (5-9 objects). The annotations are exact; a
share of the tasks (default 10 %) gets one corruption each, the four kinds in turn: a box
removed (missed object), a box added on empty background (box where there is nothing), a
class flipped (wrong class), a box grown 1.5-1.9x about its centre (loose box). The review
runs exactly as the CLI's (``review_tasks``: k-fold models by the product's training recipe,
from the cached shapes model as docs/review.md recommends), then every flag is checked
against what was done:

- a flag is right when its task got that kind of corruption at that box (IoU >= 0.5, or for
  a missed object the model's box centred inside the removed one);
- recall of a kind: corrupted boxes of that kind flagged with it;
- tasks: flagged tasks vs corrupted tasks; top-N: the first N tasks in the review's order
  (N = corrupted tasks).

Two rule sets score the same fold predictions: ``today`` (the rules before issue 22's fault 14:
a fixed loose-box similarity, tasks ordered by pooled quality) and ``tuned`` (``flags.Rules()``).
The rules were tuned on ``--tune-seeds`` only; the summary that docs/review.md publishes is over
``--seeds`` only. Fold models and predictions are kept under ``--work/seed-<n>``: a second run
only re-scores.

    nice -n 10 .venv/bin/python scripts/bench_review.py --seeds 3-7 --tune-seeds 0-2 --work /tmp/bench-review
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw

from tests.support.shapes_project import LABEL_CONFIG, region
from tests.support.synthetic import CLASSES, COLORS, Shape
from yolo_backend.formats.overlap import box_iou
from yolo_backend.review import flags

SIZE = 256  # generated images: 256 x 256
# The rules before fault 14 (with the order by pooled quality): ObjectLab's similarity alone for a loose box.
TODAY = flags.Rules(loose_area=0.0, loose_cover=0.0, nothing=0.2)
RULES = {"today": TODAY, "tuned": flags.Rules()}


# -- the generated project ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Drawn:
    """One object: its shape and what makes it hard (small, elongated, touching)."""

    shape: Shape
    tags: tuple[str, ...]


def draw_scene(seed: int, imgsz: int) -> tuple[Image.Image, list[Drawn]]:
    """An image of squares/bars and circles/ellipses of varied size and aspect, some touching, some crowded."""
    rng = random.Random(seed)
    scale = SIZE / imgsz  # image pixels per pixel at the review's size
    img = Image.new("RGB", (SIZE, SIZE), tuple(rng.randrange(200, 256) for _ in range(3)))  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randrange(10, 30)):  # clutter: thin lines the model must ignore
        x, y = rng.randrange(SIZE), rng.randrange(SIZE)
        draw.line((x, y, x + rng.randrange(-40, 40), y + rng.randrange(-40, 40)),
                  fill=tuple(rng.randrange(120, 200) for _ in range(3)), width=1)
    wanted = rng.randint(5, 9) if rng.random() < 0.25 else rng.randint(1, 4)
    placed: list[tuple[Drawn, tuple[int, int, int]]] = []
    for _ in range(6 * wanted):
        if len(placed) == wanted:
            break
        w, h = _size(rng, scale)
        neighbour = rng.choice(placed) if placed and rng.random() < 0.35 else None
        box = _touching(rng, neighbour[0].shape.box, w, h) if neighbour else _anywhere(rng, w, h)
        gap = 0 if neighbour else 4
        if box is None or not all(_apart(box, d.shape.box, gap) for d, _ in placed):
            continue
        color = rng.choice([c for c in COLORS if neighbour is None or c != neighbour[1]])
        shape = Shape(rng.randrange(len(CLASSES)), box)
        (draw.rectangle if shape.class_id == 0 else draw.ellipse)(box, fill=color)
        short, long = sorted((w, h))
        tags = (("small",) if short / scale < 20 else ()) + (("elongated",) if long >= 1.8 * short else ()) \
            + (("touching",) if neighbour else ())
        placed.append((Drawn(shape, tags), color))
    return img, [d for d, _ in placed]


def _size(rng: random.Random, scale: float) -> tuple[int, int]:
    """(width, height) in image pixels: short side 12-48 px at the review's size (log-uniform), long side <= 70."""
    short = math.exp(rng.uniform(math.log(12), math.log(48)))
    aspect = rng.uniform(1.8, 3.5) if rng.random() < 0.35 else rng.uniform(1.0, 1.2)
    long = min(short * aspect, 70.0)
    w, h = (long, short) if rng.random() < 0.5 else (short, long)
    return round(w * scale), round(h * scale)


def _anywhere(rng: random.Random, w: int, h: int) -> tuple[int, int, int, int]:
    x, y = rng.randrange(0, SIZE - w), rng.randrange(0, SIZE - h)
    return x, y, x + w, y + h


def _touching(rng: random.Random, other: tuple[int, ...], w: int, h: int) -> tuple[int, int, int, int] | None:
    """A box sharing an edge with ``other`` (one pixel of background or none between), None off the image."""
    side = rng.randrange(4)
    if side < 2:  # left or right of it, shifted along y
        x = other[2] + 1 if side == 0 else other[0] - 1 - w
        y = rng.randrange(other[1] - h + 4, other[3] - 3)
    else:
        y = other[3] + 1 if side == 2 else other[1] - 1 - h
        x = rng.randrange(other[0] - w + 4, other[2] - 3)
    box = (x, y, x + w, y + h)
    return box if x >= 0 and y >= 0 and box[2] < SIZE and box[3] < SIZE else None


def _apart(a: tuple[int, ...], b: tuple[int, ...], gap: int) -> bool:
    return a[2] + gap < b[0] or b[2] + gap < a[0] or a[3] + gap < b[1] or b[3] + gap < a[1]


def write_scenes(root: Path, count: int, seed: int, imgsz: int) -> list[dict[str, Any]]:
    """``count`` annotated tasks as Label Studio exports them; truths and tags kept in ``_truth``/``_tags``."""
    (root / "scenes").mkdir(parents=True, exist_ok=True)
    tasks = []
    for i in range(count):
        img, drawn = draw_scene(seed + i, imgsz)
        name = f"scenes/img-{seed + i}.jpg"
        img.save(root / name, quality=92)
        tasks.append({"id": i + 1, "data": {"image": f"/data/local-files/?d={name}"},
                      "annotations": [{"id": 10 * (i + 1), "result": [region(d.shape, SIZE, SIZE) for d in drawn],
                                       "was_cancelled": False, "ground_truth": False,
                                       "created_at": "2025-01-01T00:00:00Z"}],
                      "_truth": [(d.shape.class_id, d.shape.box) for d in drawn],
                      "_tags": [list(d.tags) for d in drawn]})
    return tasks


# -- corruptions ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Corruption:
    """What was done to one task, and where (pixels); ``tags`` of the object it was done to."""

    task_id: int
    kind: str
    box: tuple[float, float, float, float]
    tags: tuple[str, ...] = ()


def corrupt(tasks: list[dict[str, Any]], share: float, seed: int, imgsz: int) -> list[Corruption]:
    """One corruption on ``share`` of the tasks, the kinds in turn; changes the tasks in place."""
    rng = random.Random(seed)
    order = rng.sample(range(len(tasks)), len(tasks))
    done: list[Corruption] = []
    for index in order:
        if len(done) == round(share * len(tasks)):
            break
        task, kind = tasks[index], flags.KINDS[len(done) % len(flags.KINDS)]
        results = task["annotations"][0]["result"]
        if kind == "spurious":
            box = _empty_spot(task["_truth"], rng, imgsz)
            if box is None:
                continue  # a crowded image with no room: the next task takes this kind
            results.append(region(Shape(rng.randrange(len(CLASSES)), box), SIZE, SIZE))
            done.append(Corruption(task["id"], kind, box))
            continue
        j = rng.randrange(len(results))
        value, tags = results[j]["value"], tuple(task["_tags"][j])
        box = _pixels(value)
        if kind == "missed":
            del results[j], task["_tags"][j]  # region indices stay those of the annotation
        elif kind == "wrong_class":
            value["rectanglelabels"] = [CLASSES[1 - CLASSES.index(value["rectanglelabels"][0])]]
        else:
            box = _grown(box, rng.uniform(1.5, 1.9))
            value.update(x=box[0] / SIZE * 100, y=box[1] / SIZE * 100, width=(box[2] - box[0]) / SIZE * 100,
                         height=(box[3] - box[1]) / SIZE * 100)
        done.append(Corruption(task["id"], kind, box, tags))
    return done


def _pixels(value: dict[str, float]) -> tuple[float, float, float, float]:
    x, y = value["x"] * SIZE / 100, value["y"] * SIZE / 100
    return x, y, x + value["width"] * SIZE / 100, y + value["height"] * SIZE / 100


def _grown(box: tuple[float, ...], factor: float) -> tuple[float, float, float, float]:
    cx, cy, w, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]
    x1, y1 = max(0.0, cx - w * factor / 2), max(0.0, cy - h * factor / 2)
    return x1, y1, min(SIZE, cx + w * factor / 2), min(SIZE, cy + h * factor / 2)


def _empty_spot(truth: list[tuple[int, tuple[int, ...]]], rng: random.Random,
                imgsz: int) -> tuple[int, int, int, int] | None:
    """A box of a generated object's size on background only; None when there is no room."""
    for _ in range(200):
        w, h = _size(rng, SIZE / imgsz)
        box = _anywhere(rng, w, h)
        if all(_apart(box, b, 6) for _, b in truth):
            return box
    return None


# -- scoring ----------------------------------------------------------------------------------------------
def hits(flag: flags.Flag, corruption: Corruption | None) -> bool:
    """The flag names the corruption's kind at its box (a missed object: the model's box centred in it)."""
    if corruption is None or corruption.kind != flag.kind:
        return False
    if float(box_iou(_array(flag.box), _array(corruption.box))[0, 0]) >= 0.5:
        return True
    cx, cy = (flag.box[0] + flag.box[2]) / 2, (flag.box[1] + flag.box[3]) / 2
    x1, y1, x2, y2 = corruption.box
    return flag.kind == "missed" and x1 <= cx <= x2 and y1 <= cy <= y2


def _array(box: tuple[float, ...]) -> Any:
    import numpy as np

    return np.array([box], float)


@dataclass
class Counts:
    """One seed, one rule set: per kind [right flags, flags, found corruptions, corruptions]; the order's top-N."""

    kinds: dict[str, list[int]] = field(default_factory=dict)
    tasks: list[int] = field(default_factory=list)  # right flagged tasks, flagged tasks, corrupted tasks
    top: list[int] = field(default_factory=list)  # corrupted among the first N, N
    false_tags: dict[str, int] = field(default_factory=dict)  # false loose flags by the object's tags


def count(verdicts: dict[Any, flags.Verdict], corruptions: list[Corruption], order: list[Any],
          tags: dict[Any, list[list[str]]]) -> Counts:
    by_task = {c.task_id: c for c in corruptions}
    out = Counts()
    for kind in flags.KINDS:
        raised = [(t, f) for t, v in verdicts.items() for f in v.flags if f.kind == kind]
        wanted = [c for c in corruptions if c.kind == kind and c.task_id in verdicts]
        found = sum(any(hits(f, c) for f in verdicts[c.task_id].flags) for c in wanted)
        out.kinds[kind] = [sum(hits(f, by_task.get(t)) for t, f in raised), len(raised), found, len(wanted)]
        if kind == "loose":
            for t, f in raised:
                if not hits(f, by_task.get(t)) and f.region is not None and f.region < len(tags[t]):
                    for tag in tags[t][f.region] or ["plain"]:
                        out.false_tags[tag] = out.false_tags.get(tag, 0) + 1
    flagged = {t for t, v in verdicts.items() if v.flags}
    out.tasks = [len(flagged & set(by_task)), len(flagged), len(by_task)]
    out.top = [len(set(order[:len(by_task)]) & set(by_task)), len(by_task)]
    return out


def today_order(verdicts: dict[Any, flags.Verdict]) -> list[Any]:
    """Before fault 14: every task by its pooled quality, worst first."""
    return sorted(verdicts, key=lambda t: verdicts[t].quality)


def review_order(verdicts: dict[Any, flags.Verdict]) -> list[Any]:
    """The review's order (``Verdict.rank``): flagged tasks by their surest flag, then the rest by quality."""
    return sorted(verdicts, key=lambda t: verdicts[t].rank)


# -- one seed -----------------------------------------------------------------------------------------------
def run_seed(seed: int, args: argparse.Namespace, root: Path) -> tuple[dict[str, Counts], float]:
    """Generate, corrupt, review (fold models kept under ``root``), count under each rule set; seconds taken."""
    from tests.support.trained_model import trained_shapes_model
    from yolo_backend.config import Settings
    from yolo_backend.media.fetcher import MediaFetcher
    from yolo_backend.review.folds import Plan
    from yolo_backend.review.project import review_tasks

    clean = write_scenes(root / "images", args.images, 90_000 + 1000 * seed, args.imgsz)
    tasks = copy.deepcopy(clean)
    corruptions = corrupt(tasks, args.corrupt, seed, args.imgsz)
    (root / "corruptions.json").write_text(json.dumps([asdict(c) for c in corruptions]))
    settings = Settings.from_env(model_dir=str(root / "state"), local_files_document_root=str(root / "images"),
                                 imgsz="auto", device="cpu")
    plan = Plan(args.folds, args.epochs, args.imgsz, 8, args.start or str(trained_shapes_model()))
    tags = {t["id"]: t["_tags"] for t in tasks}
    out, started, elapsed = {}, time.monotonic(), 0.0
    for name, rules in RULES.items():
        review = review_tasks(tasks, LABEL_CONFIG, settings, MediaFetcher.from_settings(settings), plan,
                              rules, root / "review", progress=False)
        elapsed = elapsed or time.monotonic() - started  # the first call trains, the second only re-scores
        order = today_order(review.verdicts) if name == "today" else review_order(review.verdicts)
        out[name] = count(review.verdicts, corruptions, order, tags)
    return out, elapsed


# -- the table ------------------------------------------------------------------------------------------------
def spread(values: list[float]) -> str:
    """mean (min-max) of the seeds' ratios; '-' when no seed had any."""
    if not values:
        return "-"
    return f"{statistics.mean(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def table(title: str, runs: dict[int, dict[str, Counts]], name: str) -> None:
    """Per kind: precision and recall as mean (min-max) over seeds, and the pooled counts."""
    print(f"\n{title}, rules {name!r}, seeds {sorted(runs)}: mean (min-max) over seeds; pooled right/raised")
    print(f"{'':<28}{'precision':<24}{'recall':<24}{'pooled P':<14}{'pooled R':<14}")
    rows = [(flags.DESCRIPTION[k], [r[name].kinds[k] for r in runs.values()]) for k in flags.KINDS]
    rows.append(("tasks (any flag)", [[r[name].tasks[0], r[name].tasks[1], r[name].tasks[0], r[name].tasks[2]]
                                      for r in runs.values()]))
    rows.append(("top-N in review order", [[r[name].top[0], r[name].top[1], r[name].top[0], r[name].top[1]]
                                           for r in runs.values()]))
    for label, counts in rows:
        precision = [a / b for a, b, _, _ in counts if b]
        recall = [c / d for _, _, c, d in counts if d]
        p = f"{sum(c[0] for c in counts)}/{sum(c[1] for c in counts)}"
        r = f"{sum(c[2] for c in counts)}/{sum(c[3] for c in counts)}"
        print(f"{label:<28}{spread(precision):<24}{spread(recall):<24}{p:<14}{r:<14}")
    false_tags: dict[str, int] = {}
    for r in runs.values():
        for tag, n in r[name].false_tags.items():
            false_tags[tag] = false_tags.get(tag, 0) + n
    print("false loose-box flags by the object's tags: " + (", ".join(f"{n} {t}" for t, n in sorted(
        false_tags.items())) or "none"))


def seeds(text: str) -> list[int]:
    """'3-7' or '3,5,8' -> a list of seeds."""
    out: list[int] = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        out += list(range(int(first), int(last or first) + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--corrupt", type=float, default=0.10, help="share of tasks given one corruption")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--seeds", type=seeds, default=seeds("3-7"), help="report seeds, e.g. 3-7")
    parser.add_argument("--tune-seeds", type=seeds, default=[], help="seeds the rules were tuned on, e.g. 0-2")
    parser.add_argument("--start", help="start of the fold models (default: the cached shapes model; "
                                        "yolov5nu.yaml: random weights, a harder case)")
    parser.add_argument("--work", type=Path, help="keep images, fold models and predictions here (default: temp)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-review-"))
    runs: dict[int, dict[str, Counts]] = {}
    for seed in [*args.tune_seeds, *args.seeds]:
        runs[seed], elapsed = run_seed(seed, args, work / f"seed-{seed}")
        print(f"seed {seed}: {args.images} tasks, review {elapsed:.0f} s; " + "; ".join(
            f"{name}: tasks P {c.tasks[0]}/{c.tasks[1]} R {c.tasks[0]}/{c.tasks[2]}, "
            f"loose P {c.kinds['loose'][0]}/{c.kinds['loose'][1]}" for name, c in runs[seed].items()), flush=True)
    for title, chosen in (("TUNE", args.tune_seeds), ("REPORT", args.seeds)):
        if chosen:
            for name in RULES:
                table(title, {s: runs[s] for s in chosen}, name)


if __name__ == "__main__":
    main()
