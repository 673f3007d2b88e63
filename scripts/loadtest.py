"""Bounded load test on loopback: N concurrent clients mixing single-task /predict and /health.

Starts the production server (gunicorn ``_wsgi:app``) on a random-weights yolov5nu unless
``--url`` names a running one, drives it with Locust (headless), and prints p50 / p99
latency, request and error counts and the server's RSS (master + workers) at start and end.

    .venv/bin/python scripts/loadtest.py                       # the full form: 20 clients, 5 minutes
    .venv/bin/python scripts/loadtest.py --train               # the same while a training run is active
    .venv/bin/python scripts/loadtest.py --duration 20 --json  # the short form CI runs
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LOCUSTFILE = textwrap.dedent('''
    from locust import HttpUser, constant, task
    # A model built from yolov5nu.yaml names its classes "0".."79": map one, or no inference would run at all.
    CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
              '<Label value="Car" predicted_values="2"/></RectangleLabels></View>')

    class Annotator(HttpUser):
        wait_time = constant(0.1)

        @task(3)
        def predict(self):
            body = {"tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=load/a.jpg"}}],
                    "label_config": CONFIG, "project": "1.1"}
            with self.client.post("/predict", json=body, catch_response=True) as answer:
                if answer.status_code != 200 or len(answer.json().get("results", [])) != 1:
                    answer.failure(f"HTTP {answer.status_code}: {answer.text[:200]}")

        @task(1)
        def health(self):
            self.client.get("/health")
''')


def server_rss_mb(pid: int) -> float:
    """RSS of gunicorn's master and its workers (training children excluded: they are not the server)."""
    master = psutil.Process(pid)
    procs = [master] + [c for c in master.children() if "training" not in " ".join(c.cmdline())]
    return sum(p.memory_info().rss for p in procs) / 2**20


def prepare(workdir: Path) -> tuple[Path, Path]:
    """A random-weights yolov5nu (nothing to download) and a local-files root with one photo-sized image."""
    from ultralytics import YOLO

    from tests.support.synthetic import draw_sample

    root, docs = workdir / "models", workdir / "docs"
    (docs / "load").mkdir(parents=True, exist_ok=True)
    root.mkdir(exist_ok=True)
    YOLO("yolov5nu.yaml").save(str(root / "yolov5nu.pt"))
    img, _ = draw_sample(1, size=(640, 480))
    img.save(docs / "load" / "a.jpg")
    return root, docs


def start_server(workdir: Path, root: Path, docs: Path, port: int, extra: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "MODEL_ROOT": str(root), "MODEL_PATH": "yolov5nu.pt", "MODEL_DIR": str(workdir / "state"),
           "LOCAL_FILES_DOCUMENT_ROOT": str(docs), "YOLO_OFFLINE": "1", "RUNTIME": "torch", "PORT": str(port),
           "HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", "ADMIN_OPEN": "true", **extra}  # it reads /metrics
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "_wsgi:app"], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["model_state"] == "ready":
                return process
        except (requests.RequestException, ValueError):
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the server did not come up; see {workdir / 'server.log'}")


def start_training(workdir: Path, settings_env: dict[str, str]) -> subprocess.Popen:
    """A real training run (synthetic shapes, many epochs) competing for the CPU, as in production."""
    from tests.support.shapes_project import export_file, write_project
    from yolo_backend.config import Settings

    tasks = write_project(workdir / "docs", 60, size=(256, 256))
    source = export_file(workdir / "export.json", tasks)
    settings = Settings.from_env({**settings_env, "TRAIN_EPOCHS": "200", "TRAIN_IMGSZ": "256",
                                  "TRAIN_MIN_IMAGES": "10", "DEVICE": "cpu"})
    code = ("import json, sys; from yolo_backend.config import Settings; from yolo_backend.training.job import run_job;"
            f"run_job('77', None, {source!r}, Settings(**json.loads(sys.stdin.read())), one_at_a_time=True)")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, text=True,
                             env={**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child.stdin.write(json.dumps(settings.__dict__))
    child.stdin.close()
    return child


def run_locust(url: str, users: int, duration: int, workdir: Path) -> dict[str, float]:
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = workdir / "stats"
    subprocess.run([sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(users),
                    "-r", str(users), "-t", f"{duration}s", "--host", url, "--csv", str(prefix), "--only-summary",
                    "--stop-timeout", "30"], cwd=workdir, check=False, capture_output=True)
    with open(f"{prefix}_stats.csv") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    total = rows["Aggregated"]
    return {"requests": int(total["Request Count"]), "errors": int(total["Failure Count"]),
            "p50_ms": float(total["50%"]), "p99_ms": float(total["99%"]),
            "predict_p50_ms": float(rows["/predict"]["50%"]), "predict_p99_ms": float(rows["/predict"]["99%"]),
            "rps": float(total["Requests/s"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=int, default=300, help="seconds of load")
    parser.add_argument("--train", action="store_true", help="keep a training run active during the load")
    parser.add_argument("--imgsz", default="auto", help="IMGSZ of the backend: auto (the checkpoint's) or pixels")
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="yolo-loadtest-"))
    root, docs = prepare(workdir)
    port = _free_port()
    extra = {"IMGSZ": args.imgsz}
    server = start_server(workdir, root, docs, port, extra)
    trainer = None
    try:
        url = f"http://127.0.0.1:{port}"
        run_locust(url, args.users, 5, workdir)  # warm-up: first predictions, thread pools, caches
        rss_start = server_rss_mb(server.pid)
        if args.train:
            trainer = start_training(workdir, {"MODEL_ROOT": str(root), "MODEL_PATH": "yolov5nu.pt",
                                               "MODEL_DIR": str(workdir / "state"),
                                               "LOCAL_FILES_DOCUMENT_ROOT": str(docs)})
            time.sleep(5)
        inferred_before = inference_count(url)
        stats = run_locust(url, args.users, args.duration, workdir)
        training_alive = trainer is not None and trainer.poll() is None
        rss_end = server_rss_mb(server.pid)
        inferred = inference_count(url) - inferred_before
    finally:
        if trainer is not None:
            trainer.kill()
        server.terminate()
        server.wait(30)
    report = {**stats, "users": args.users, "duration_s": args.duration, "training": args.train,
              "training_active_at_end": training_alive, "rss_start_mb": round(rss_start, 1),
              "rss_end_mb": round(rss_end, 1), "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 1),
              "images_inferred": inferred}
    if args.json:
        print(json.dumps(report))
    else:
        print("\n".join(f"{key:>24}: {value}" for key, value in report.items()))


def inference_count(url: str) -> int:
    """Images the model ran on, from the server's /metrics: proof that /predict did inference."""
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("yolo_backend_inference_seconds_count"):
            return int(float(line.split()[-1]))
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
