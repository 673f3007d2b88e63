"""Does ordering tasks by the task score (TASK_SCORE) teach a detector faster than a random order?

    .venv/bin/python scripts/bench_active_learning.py            # ~25 min on 2 idle CPU cores
    .venv/bin/python scripts/bench_active_learning.py --orders uncertainty,random,power --seeds 5
    .venv/bin/python scripts/bench_active_learning.py --quick    # a smoke run: 1 seed, 2 rounds

A generated shapes project (``tests/support/synthetic.py``): a pool of unlabeled images and a
holdout. Each seed starts from the same 10 random pool images, trains a detector from random
weights (it knows nothing of the classes), then 4 rounds add 10 images each, picked either by
the lowest task score (``yolo_backend.serving.uncertainty``, as a Data Manager sorted ascending by
*Prediction score* would give them) or at random. Both orders train with the same settings and
seed; after each round the holdout mAP50-95 (Ultralytics' val) is printed. Rival measures:
``--orders max`` (the least sure candidate alone instead of the sum) and ``--orders power``
(power sampling: the sum times a per-task random draw, Kirsch et al. 2023). ``--first-seed``
adds seeds to an earlier run. Training is deterministic on one machine, not across machines.
Not a test: the numbers go to docs/uncertainty.md.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")  # our lines only, not a progress bar per epoch
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.synthetic import CLASSES, draw_sample, yolo_lines  # noqa: E402
from yolo_backend.formats.controls import ControlSpec  # noqa: E402
from yolo_backend.formats.convert import Detection, Target  # noqa: E402
from yolo_backend.serving import uncertainty  # noqa: E402

# the project
POOL, HOLDOUT = 300, 100  # unlabeled images to pick from; images that only judge
START, STEP, ROUNDS = 10, 10, 4  # labeled at first; added per round; rounds
SHAPES = dict(max_shapes=6, min_side=16, max_side=110)  # 1..6 objects, some small: images differ in difficulty
# training, the same for both orders (tests/support/trained_model.py's fast recipe, at fewer images)
TRAIN = dict(imgsz=160, epochs=50, batch=8, nbs=8, warmup_epochs=1, device="cpu", workers=0, amp=False,
             deterministic=False, plots=False, val=False, verbose=False)
DEFAULT_THRESHOLD = 0.5  # MODEL_SCORE_THRESHOLD, for a class whose holdout F1 is 0 at every threshold


def write_project(root: Path) -> tuple[list[str], Path]:
    """Pool and holdout images with YOLO labels; returns the pool's image names and the holdout folder."""
    for split, count, offset in (("pool", POOL, 0), ("holdout", HOLDOUT, 1_000_000)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(count):
            img, shapes = draw_sample(offset + i, **SHAPES)  # type: ignore[arg-type]
            img.save(root / split / "images" / f"{i:05d}.jpg", quality=92)
            (root / split / "labels" / f"{i:05d}.txt").write_text("\n".join(yolo_lines(shapes, *img.size)) + "\n")
    return sorted(p.name for p in (root / "pool" / "images").iterdir()), root / "holdout"


def dataset(root: Path, work: Path, names: list[str]) -> Path:
    """A data.yaml training on ``names`` of the pool (symlinks) and validating on the holdout."""
    for sub in ("images", "labels"):
        (work / "train" / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        stem = Path(name).stem
        (work / "train" / "images" / name).symlink_to(root / "pool" / "images" / name)
        (work / "train" / "labels" / f"{stem}.txt").symlink_to(root / "pool" / "labels" / f"{stem}.txt")
    data = work / "data.yaml"
    classes = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASSES))
    data.write_text(f"path: {work}\ntrain: train/images\nval: {root / 'holdout' / 'images'}\nnames:\n{classes}\n")
    return data


def train_and_judge(root: Path, work: Path, names: list[str], seed: int) -> tuple[Any, float, dict[int, float]]:
    """Train from random weights on ``names``; the model, its holdout mAP50-95 and per-class F1-best thresholds."""
    from ultralytics import YOLO

    data = dataset(root, work, names)
    model = YOLO("yolov5nu.yaml")
    model.train(data=str(data), seed=seed, project=str(work / "runs"), name="train", exist_ok=True, **TRAIN)
    trained = YOLO(str(work / "runs" / "train" / "weights" / "last.pt"))
    metrics = trained.val(data=str(data), imgsz=TRAIN["imgsz"], batch=16, device="cpu", workers=0, plots=False,
                          verbose=False, project=str(work / "runs"), name="val", exist_ok=True)
    thresholds = {}
    for row, class_id in enumerate(metrics.box.ap_class_index):  # as CLASS_THRESHOLDS: the F1-best score per class
        f1 = metrics.box.f1_curve[row]
        best = int(f1.argmax())
        thresholds[int(class_id)] = float(metrics.box.px[best]) if f1[best] > 0 else DEFAULT_THRESHOLD
    return trained, float(metrics.box.map), {c: min(max(t, 0.05), 0.95) for c, t in thresholds.items()}


def sampled_doubt(doubt: float, key: str, beta: float = 1.0) -> float:
    """``doubt`` times a Gumbel draw fixed by ``key``: a sort by it is power sampling (Kirsch et al., TMLR 2023).

    Taking the ``k`` largest of ``log(doubt) + G/beta`` (``G`` standard Gumbel) draws ``k`` tasks
    without replacement with probability proportional to ``doubt ** beta``: the most doubtful
    are still the likeliest first, but a batch is not ``k`` near copies of one kind of image.
    The draw is a hash of ``key`` (a task and a round here; a task and a version if it served), so
    every request, worker and restart would give the same order. Tried, not served: it did not
    beat the plain sum (docs/uncertainty.md).
    """
    if doubt <= 0.0:
        return 0.0
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    uniform = (digest + 0.5) / 2**64  # in (0, 1)
    return doubt * math.exp(-math.log(-math.log(uniform)) / beta)


def task_doubt(found: list[Detection], target: Target, order: str) -> float:
    """``uncertainty``/``power``: the summed doubt; ``max``: the least sure candidate alone (a rival)."""
    if order == "max":
        return max((uncertainty.decision_doubt(det.score, target.threshold_for(det.class_id)) for det in found
                    if det.score >= uncertainty.floor_for(target.threshold_for(det.class_id))), default=0.0)
    return uncertainty.image_doubt(found, [target])


def pick_uncertain(model: Any, root: Path, unlabeled: list[str], thresholds: dict[int, float], count: int,
                   order: str = "uncertainty", salt: str = "") -> list[str]:
    """The ``count`` unlabeled images with the lowest task score, as the Data Manager sorted ascending shows them."""
    target = Target(ControlSpec("label", "image", "rectanglelabels"), labels=dict(enumerate(CLASSES)),
                    threshold=DEFAULT_THRESHOLD, class_thresholds=thresholds)
    conf = uncertainty.ask_conf(target.lowest_threshold, "uncertainty")
    scored = []
    paths = [str(root / "pool" / "images" / name) for name in unlabeled]
    for name, result in zip(unlabeled, model.predict(paths, conf=conf, imgsz=TRAIN["imgsz"], device="cpu",
                                                      verbose=False, stream=True)):
        boxes = result.boxes
        found = [Detection(int(c), float(s), (0.0, 0.0, 1.0, 1.0))
                 for c, s in zip(boxes.cls.tolist(), boxes.conf.tolist())]
        doubt = task_doubt(found, target, order)
        if order == "power":  # power sampling: doubt times a per-task Gumbel draw
            doubt = sampled_doubt(doubt, f"{salt}/{name}")
        scored.append((uncertainty.confidence(doubt), name))
    scored.sort()
    empty = sum(score == 1.0 for score, _ in scored)
    print(f"    task scores of {len(scored)} unlabeled: picked {scored[0][0]:.3f}..{scored[count - 1][0]:.3f}, "
          f"median {scored[len(scored) // 2][0]:.3f}, {empty} with nothing found (score 1)", flush=True)
    return [name for _, name in scored[:count]]


def run_order(root: Path, pool: list[str], seed: int, order: str, first: tuple[float, Any, dict[int, float]],
              rounds: int) -> list[float]:
    """mAP50-95 after each round of one order; round 0 (``first``) is shared by both orders of a seed."""
    rng = random.Random(f"{seed}-{order}")
    labeled = list(pool_start(pool, seed))
    score, model, thresholds = first
    maps = [score]
    for round_no in range(1, rounds + 1):
        unlabeled = [name for name in pool if name not in labeled]
        started = time.perf_counter()
        if order == "random":
            picked = rng.sample(unlabeled, STEP)
        else:
            picked = pick_uncertain(model, root, unlabeled, thresholds, STEP, order, salt=f"{seed}-{round_no}")
        labeled += picked
        with tempfile.TemporaryDirectory(prefix="al-round-") as work:
            model, score, thresholds = train_and_judge(root, Path(work), labeled, seed)
        maps.append(score)
        print(f"  seed {seed} {order:>11} round {round_no}: {len(labeled)} labeled ({boxes(root, labeled)} boxes), "
              f"mAP50-95 {score:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
    return maps


def boxes(root: Path, names: list[str]) -> int:
    """Objects in the labeled images: what an annotator drew (the measure favours crowded images)."""
    return sum(1 for name in names for line in (root / "pool" / "labels" / f"{Path(name).stem}.txt").read_text()
               .splitlines() if line.strip())


def pool_start(pool: list[str], seed: int) -> list[str]:
    return random.Random(seed).sample(pool, START)


def table(results: dict[str, dict[int, list[float]]], rounds: int) -> str:
    """Markdown: per round, each order's mean mAP50-95 over seeds, then each seed's."""
    orders = list(results)
    seeds = sorted(next(iter(results.values())))
    head = "| round | labeled | " + " | ".join(f"{o} (mean)" for o in orders)
    head += " | " + " | ".join(f"{o} s{s}" for o in orders for s in seeds) + " |"
    lines = [head, "|" + "---|" * (2 + len(orders) * (1 + len(seeds)))]
    for r in range(rounds + 1):
        means = [statistics.mean(results[o][s][r] for s in seeds) for o in orders]
        each = [results[o][s][r] for o in orders for s in seeds]
        lines.append(f"| {r} | {START + r * STEP} | " + " | ".join(f"{m:.3f}" for m in means) + " | "
                     + " | ".join(f"{v:.3f}" for v in each) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds from this one (to add seeds later)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--orders", default="uncertainty,random",
                        help="comma-separated: uncertainty, random, max, power")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 rounds")
    args = parser.parse_args()
    seeds, rounds = (1, 2) if args.quick else (args.seeds, args.rounds)
    orders = args.orders.split(",")
    import torch

    torch.set_num_threads(2)  # a shared machine: do not take every core
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="al-bench-") as tmp:
        root = Path(tmp)
        pool, _ = write_project(root)
        print(f"project: {POOL} pool + {HOLDOUT} holdout images, {SHAPES}; training {TRAIN}", flush=True)
        results: dict[str, dict[int, list[float]]] = {order: {} for order in orders}
        for seed in range(args.first_seed, args.first_seed + seeds):
            work = root / f"start-{seed}"
            model, score, thresholds = train_and_judge(root, work, pool_start(pool, seed), seed)
            print(f"seed {seed} round 0: {START} labeled, mAP50-95 {score:.3f}", flush=True)
            for order in orders:
                results[order][seed] = run_order(root, pool, seed, order, (score, model, thresholds), rounds)
            shutil.rmtree(work, ignore_errors=True)
        print(f"\nholdout mAP50-95 ({HOLDOUT} images) per round, {seeds} seeds, "
              f"{time.perf_counter() - started:.0f} s in all:\n")
        print(table(results, rounds))


if __name__ == "__main__":
    main()
