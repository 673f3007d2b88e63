"""Peak RSS of one /predict of eight PNGs that decode to 9,999 x 9,999, before and after DECODE_BUDGET_MB.

    python scripts/bench_decode_memory.py [--before REV] [--side 9999] [--count 8] [--budget-mb N]

"before" runs the same request on a checkout of REV (default: the commit before DECODE_BUDGET_MB
came in), "after" on this tree; each in a fresh process, which must have the memory ("before"
took 11.9 GB for the default request). The PNGs are one flat colour: a few hundred kB each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.decode_memory import run  # noqa: E402


def before_budget() -> str:
    """The parent of the commit that added the decode budget (as yolo_backend/decode_budget.py, before media/)."""
    first = subprocess.run(["git", "log", "--format=%H", "--diff-filter=A", "--", "yolo_backend/decode_budget.py"],
                           capture_output=True, text=True, cwd=ROOT, check=True).stdout.split()
    if not first:
        raise SystemExit("decode_budget.py is not committed yet: pass --before REV")
    return f"{first[-1]}~1"


def checkout(rev: str, folder: Path) -> Path:
    archive = folder / "tree.tar"
    subprocess.run(["git", "archive", "-o", str(archive), rev], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "tree", filter="data")
    return folder / "tree"


def line(label: str, measured: dict) -> str:
    growth = measured["peak_mb"] - measured["rss_before_mb"]
    return (f"{label:<7} budget {measured['budget_mb'] or '-':>5} MB  RSS before {measured['rss_before_mb']:>6} MB  "
            f"peak {measured['peak_mb']:>6} MB  growth {growth:>6} MB  HTTP {measured['status']}, "
            f"{measured['results']} results")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=None, help="git revision to compare with (default: before the budget)")
    parser.add_argument("--side", type=int, default=9999)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--budget-mb", type=int, default=None, help="DECODE_BUDGET_MB for after (default: default)")
    parser.add_argument("--skip-before", action="store_true")
    args = parser.parse_args()
    print(f"one /predict of {args.count} flat PNGs of {args.side} x {args.side} (local files, no model)")
    if not args.skip_before:
        with tempfile.TemporaryDirectory() as tmp:
            print(line("before", run(args.side, args.count, tree=checkout(args.before or before_budget(), Path(tmp)))))
    print(line("after", run(args.side, args.count, args.budget_mb)))


if __name__ == "__main__":
    main()
