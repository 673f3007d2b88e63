"""How much labeling the live loop saves: edits per image, round by round, for four ways to label a project.

    .venv/bin/python scripts/bench_loop.py                       # 300 images, 3 seeds (about 100 min on 2 cores)
    .venv/bin/python scripts/bench_loop.py --images 100 --seeds 1 --strategies loop  # one strategy, short
    .venv/bin/python scripts/bench_loop.py --images 30 --seeds 1 --strategies draw,fixed  # a smoke run

A real Label Studio (``tests/support/label_studio.py``) and the real service (gunicorn, one per
strategy, fresh MODEL_DIR) label the same generated project (``tests/support/loop_project.py``:
3 classes, objects from 12 px to a third of the image, aspect 1:3 to 3:1, crowded and touching)
in the same order with a simulated annotator (``tests/support/labeling_loop.py``) who opens each
task, corrects the pre-label to the truth and submits. Strategies: draw everything (no model),
a fixed base (the shapes model, which knows squares and circles, never trained: what Label
Studio's YOLO example gives), our loop (retraining on submit by TRAIN_EVERY_N, the gate,
promotion), our loop with the Data Manager's order by prediction score. The annotator of a loop
strategy works at ``--speedup`` times the pace of the time model below, while training runs at
this machine's speed, so versions arrive later (in tasks) than they would for a person.
Writes docs/loop.md (table, runs) and docs/loop.png (edits per image by round).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import MODEL_FILE, backend_env  # noqa: E402
from tests.support.backend_server import start_backend  # noqa: E402
from tests.support.edit_count import Edits  # noqa: E402
from tests.support.label_studio import LabelStudioServer, start_label_studio  # noqa: E402
from tests.support.labeling_loop import STRATEGIES, LoopResult, Service, Strategy, label_project  # noqa: E402
from tests.support.loop_project import write_images  # noqa: E402
from tests.support.trained_model import trained_shapes_model  # noqa: E402

# Seconds per action. Sources: Papadopoulos et al., "Extreme clicking for efficient object annotation",
# ICCV 2017: 7.0 s per box by extreme clicking, against 34.5 s for the traditional way (Su et al., 2012,
# as quoted there). Deleting, relabeling and moving are our assumptions, not measured: a delete is a click
# and a key (2 s), a relabel a click on the box and one on the label (2 s), a move or resize as long as
# drawing the box anew by extreme clicking (7 s, an upper bound). A pre-label kept costs nothing.
COSTS = {"deleted": 2.0, "drawn": 7.0, "moved": 7.0, "relabeled": 2.0}
DRAW_TRADITIONAL = 34.5
# Training. TRAIN_IMGSZ 320: the project's 160 px images upscaled twice, so a 12 px object is 24 px to the
# model (trained at 160 the loop's versions missed or misplaced small boxes: docs/loop.md, "What each
# change did"; the service's default 640 would do as well at 4x the CPU time). TRAIN_STEPS 150: a run
# takes about three minutes on 2 CPU cores whether the project has 20 labeled images or 300.
# IMGSZ auto: each version is served (and judged) at the size it was trained at, the base at its 160 (the
# tests' backend_env pins 160 for the base alone; a 320 version served at 160 lost what it had learned).
TRAINING = {"IMGSZ": "auto", "TRAIN_EPOCHS": "40", "TRAIN_STEPS": "150", "TRAIN_IMGSZ": "320", "TRAIN_BATCH": "8",
            "TRAIN_PATIENCE": "40", "TRAIN_MIN_IMAGES": "8", "TRAIN_THREADS": "2", "RUNTIME": "torch"}


def seconds(edits: Edits, draw: float = COSTS["drawn"]) -> float:
    """The annotator's time for one image's corrections under COSTS (``draw``: the cost of a drawn box)."""
    return (edits.deleted * COSTS["deleted"] + edits.drawn * draw + edits.moved * COSTS["moved"]
            + edits.relabeled * COSTS["relabeled"])


def run_strategy(ls: LabelStudioServer, key: str, seed: int, args: argparse.Namespace, model_root: Path,
                 work: Path) -> dict[str, Any]:
    """One strategy on one seed's project; its per-task records and runs as plain data."""
    strategy: Strategy = STRATEGIES[key]
    images = write_images(ls.document_root / f"loop-{seed}", args.images, seed=seed * 100_000, size=args.size)
    server = None
    if strategy.model:
        every_n = str(args.every_n if strategy.retrain else 0)
        server = start_backend(work / f"{key}-{seed}", backend_env(ls, model_root, **{
            **TRAINING, **dict(kv.split("=", 1) for kv in args.set), "TRAIN_EVERY_N": every_n}))

    def pace(_labeled: int, edits: Edits, _service: Service | None) -> None:
        if strategy.retrain:  # only the loop's results depend on how fast the annotator goes
            time.sleep(seconds(edits) / args.speedup)

    started = time.time()
    try:
        result = label_project(ls, images, strategy, server.url if server else None,
                               f"bench loop: {key} seed {seed}", pace)
    finally:
        if server:
            server.stop()
    print(f"  {strategy.name:28s} seed {seed}: {mean_edits(result):.2f} edits/image, "
          f"{len(result.runs)} runs, {time.time() - started:.0f} s", flush=True)
    return as_data(result)


def mean_edits(result: LoopResult) -> float:
    return statistics.mean(o.edits.total for o in result.opened)


def as_data(result: LoopResult) -> dict[str, Any]:
    first_served: dict[str, int] = {}
    for o in result.opened:
        if o.version is not None:
            first_served.setdefault(o.version, o.step + 1)
    runs = []
    for run in sorted(result.runs.values(), key=lambda r: r["queued_at"]):
        gain = (run.get("metrics") or {}).get("gain") or {}
        runs.append({"state": run["state"], "reason": run.get("reason", ""), "version": run.get("version"),
                     "labeled_at_seen": run["labeled_at_seen"],
                     "seconds": round((run.get("finished_at") or time.time()) - run["queued_at"], 1),
                     "served_from_task": first_served.get(run.get("version") or ""), "gain": gain,
                     "images": (run.get("metrics") or {}).get("train_images"),
                     "epochs": (run.get("metrics") or {}).get("epochs")})
    return {"strategy": result.strategy.name,
            "edits": [o.edits.total for o in result.opened],
            "kinds": [[o.edits.deleted, o.edits.drawn, o.edits.moved, o.edits.relabeled] for o in result.opened],
            "seconds": [seconds(o.edits) for o in result.opened],
            "seconds_traditional": [seconds(o.edits, DRAW_TRADITIONAL) for o in result.opened],
            "versions": [o.version for o in result.opened], "runs": runs}


def spread(values: list[float]) -> str:
    """Mean ± standard deviation over seeds (± 0 for one seed)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def per_round(edits: list[int], size: int) -> list[float]:
    return [statistics.mean(edits[i:i + size]) for i in range(0, len(edits), size)]


def table(results: dict[str, list[dict[str, Any]]], round_size: int, images: int) -> list[str]:
    rounds = (images + round_size - 1) // round_size
    head = [f"images {r * round_size + 1}-{min((r + 1) * round_size, images)}" for r in range(rounds)]
    lines = ["| strategy | seeds | " + " | ".join(head)
             + " | whole project | time/image (7 s draw) | time/image (34.5 s draw) |",
             "|---|---|" + "---|" * (rounds + 3)]
    for key, seeds in results.items():
        by_round = [per_round(s["edits"], round_size) for s in seeds]
        cells = [spread([b[r] for b in by_round]) for r in range(rounds)]
        total = spread([statistics.mean(s["edits"]) for s in seeds])
        fast = spread([statistics.mean(s["seconds"]) for s in seeds])
        slow = spread([statistics.mean(s["seconds_traditional"]) for s in seeds])
        lines.append(f"| {STRATEGIES[key].name} | {len(seeds)} | "
                     + " | ".join(cells) + f" | **{total}** | {fast} s | {slow} s |")
    return lines


def plot(results: dict[str, list[dict[str, Any]]], round_size: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, seeds in results.items():
        by_round = [per_round(s["edits"], round_size) for s in seeds]
        means = [statistics.mean(col) for col in zip(*by_round)]
        sds = [statistics.stdev(col) if len(col) > 1 else 0.0 for col in zip(*by_round)]
        x = [(r + 1) * round_size for r in range(len(means))]
        ax.errorbar(x, means, yerr=sds, marker="o", capsize=3, label=STRATEGIES[key].name)
    ax.set_xlabel("images labeled (end of round)")
    ax.set_ylabel("edits per image")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def runs_lines(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["| strategy | seed | queued after task | state | version | served from task | took "
             "| gain (90 % interval) |",
             "|---|---|---|---|---|---|---|---|"]
    for key, seeds in results.items():
        for i, seed in enumerate(seeds):
            for run in seed["runs"]:
                gain = run["gain"]
                interval = (f"{gain.get('f1', 0):+.3f} ({gain.get('low', 0):+.3f} to {gain.get('high', 0):+.3f})"
                            if gain else run["reason"][:60])
                lines.append(f"| {STRATEGIES[key].name} | {i + 1} | {run['labeled_at_seen']} | {run['state']} | "
                             f"{run['version'] or '-'} | {run['served_from_task'] or '-'} | {run['seconds']:.0f} s | "
                             f"{interval} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", type=int, default=160, help="image side in px")
    parser.add_argument("--round", type=int, default=25, help="images per round in the table")
    parser.add_argument("--every-n", type=int, default=10, help="TRAIN_EVERY_N of the loop strategies")
    parser.add_argument("--speedup", type=float, default=10.0, help="annotator pace: the time model divided by this")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a service setting over TRAINING (repeatable), for the ablations in docs/loop.md")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "loop.json")
    parser.add_argument("--report-only", action="store_true", help="redraw the table and plot from --out")
    args = parser.parse_args()
    keys = args.strategies.split(",")
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    if args.report_only:
        results = json.loads(args.out.read_text())["results"]
    else:
        measure(args, keys, results)
    plot(results, args.round, args.out.with_suffix(".png"))
    print("\n".join(table(results, args.round, args.images)))
    print("\n".join(runs_lines(results)))


def measure(args: argparse.Namespace, keys: list[str], results: dict[str, list[dict[str, Any]]]) -> None:
    """Every strategy on every seed; the results file is rewritten after each, so a stopped run keeps them."""
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        work = Path(tmp)
        model_root = work / "model-root"
        model_root.mkdir()
        (model_root / MODEL_FILE).write_bytes(trained_shapes_model().read_bytes())
        ls = start_label_studio(work / "label-studio")
        try:
            for seed in range(1, args.seeds + 1):
                for key in keys:
                    results[key].append(run_strategy(ls, key, seed, args, model_root, work))
                    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                    "results": results}))
        finally:
            ls.stop()


if __name__ == "__main__":
    main()
