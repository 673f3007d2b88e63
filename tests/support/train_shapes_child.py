"""Child process of ``trained_model``: ``python train_shapes_child.py RECIPE_JSON WORKDIR OUT_PT``.

Kept apart so Ultralytics' changes to torch threads, seeds and callbacks never leak
into the test process that asked for the model.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")


def main(recipe: dict, work: Path, out: Path) -> None:
    import torch
    from ultralytics import YOLO

    from tests.support.synthetic import write_yolo_dataset

    torch.set_num_threads(os.cpu_count() or 1)
    data = write_yolo_dataset(work / "data", recipe["n_train"], recipe["n_val"], seed=recipe["seed"])
    started = time.perf_counter()
    model = YOLO(recipe["arch"])
    model.train(data=str(data), imgsz=recipe["imgsz"], epochs=recipe["epochs"], batch=recipe["batch"],
                warmup_epochs=recipe["warmup_epochs"], device="cpu", workers=0, seed=recipe["train_seed"],
                deterministic=False, plots=False, **({"nbs": recipe["nbs"]} if "nbs" in recipe else {}),
                val=False, project=str(work / "runs"), name="train", exist_ok=True, verbose=False, amp=False)
    seconds = time.perf_counter() - started
    best = work / "runs" / "train" / "weights" / "best.pt"
    last = work / "runs" / "train" / "weights" / "last.pt"
    shutil.copyfile(best if best.is_file() else last, out)
    metrics = YOLO(str(out)).val(data=str(data), imgsz=recipe["imgsz"], device="cpu", workers=0,
                                 plots=False, verbose=False, project=str(work / "runs"), name="val")
    (work / "metrics.json").write_text(json.dumps({
        "map50": float(metrics.box.map50), "map50_95": float(metrics.box.map),
        "train_seconds": round(seconds, 1), "recipe": recipe,
    }))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main(json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
