"""/predict latency while idle and while a training run goes on, on this machine.

    .venv/bin/python scripts/bench_training.py [--requests 40] [--tasks 40] [--epochs 10] [--imgsz 256]

Serves the backend in this process (as a web worker would), trains in the local runner's
child process (niced, TRAIN_THREADS), and prints p50/p90 of /predict for both phases,
their ratio (target: <= 2x), the run's time and its holdout metrics.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")

from tests.support.shapes_project import LABEL_CONFIG, export_file, write_project  # noqa: E402
from tests.support.trained_model import trained_shapes_model  # noqa: E402
from yolo_backend.config import Settings  # noqa: E402

PROJECT = "1"


def serve(settings: Settings, source: str) -> tuple[str, object]:
    """The backend on a free port in a thread of this process; returns its URL and the trainer."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request

    from yolo_backend.app import build_backend
    from yolo_backend.training import ProjectTrainer
    from yolo_backend.web.http_api import create_app

    trainer = ProjectTrainer(settings, source=source)
    backend = build_backend(settings, trainer=trainer, start=False)
    backend.store.start(background=False)
    server = make_server("127.0.0.1", 0, create_app(backend), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", trainer


def latencies(url: str, images: list[str], count: int, until: callable = lambda: False) -> list[float]:
    """Seconds per /predict of one task, one request at a time, as an annotator opening tasks."""
    out = []
    for i in range(count):
        task = {"id": 10_000 + i, "data": {"image": f"/data/local-files/?d={images[i % len(images)]}"}}
        started = time.perf_counter()
        answer = requests.post(f"{url}/predict", json={"tasks": [task], "project": f"{PROJECT}.1",
                                                       "label_config": LABEL_CONFIG}, timeout=60)
        answer.raise_for_status()
        out.append(time.perf_counter() - started)
        if until():
            break
    return out


def describe(name: str, values: list[float]) -> float:
    p50 = statistics.median(values) * 1000
    p90 = sorted(values)[int(len(values) * 0.9) - 1] * 1000 if len(values) >= 10 else float("nan")
    print(f"{name:<24} n={len(values):<4} p50 {p50:7.1f} ms   p90 {p90:7.1f} ms")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=256)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-training-"))
    base = trained_shapes_model()
    (work / "root").mkdir()
    shutil.copyfile(base, work / "root" / "base.pt")
    tasks = write_project(work / "docroot", args.tasks)
    write_project(work / "docroot", 20, seed=90_000, folder="fresh")
    fresh = [f"fresh/img-{90_000 + i}.jpg" for i in range(20)]
    settings = Settings.from_env(model_root=str(work / "root"), model_path="base.pt",
                                 model_dir=str(work / "state"), local_files_document_root=str(work / "docroot"),
                                 imgsz=str(args.imgsz), train_imgsz=args.imgsz, train_epochs=args.epochs,
                                 train_batch=8, train_patience=args.epochs, train_min_images=10)
    url, trainer = serve(settings, export_file(work / "export.json", tasks))
    print(f"cores {os.cpu_count()}, inference imgsz {args.imgsz}, training threads "
          f"{settings.train_threads or max(1, (os.cpu_count() or 1) - 1)} (niced)")
    latencies(url, fresh, 3)  # warm-up
    idle = describe("/predict idle", latencies(url, fresh, args.requests))
    started = time.monotonic()
    trainer.handle("START_TRAINING", PROJECT)
    while ((trainer.status(PROJECT)["run"] or {}).get("progress") or {}).get("epoch", 0) < 1:
        time.sleep(0.2)  # past the imports and the dataset: inside the epochs
    busy = describe("/predict during training", latencies(
        url, fresh, args.requests, until=lambda: trainer.status(PROJECT)["state"] != "running"))
    print(f"ratio during/idle: {busy / idle:.2f}x (target <= 2x)")
    while trainer.status(PROJECT)["state"] != "idle":
        time.sleep(1)
    run = trainer.status(PROJECT)["last_run"]
    print(f"run {run['state']} in {time.monotonic() - started:.0f} s ({run['reason']}); metrics {run['metrics']}")


if __name__ == "__main__":
    main()
