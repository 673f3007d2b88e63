"""Retrieve predictions on a project of any size, and bulk throughput with 1 and 2 ``rq worker`` processes.

    .venv/bin/python scripts/bench_bulk.py                         # 10,000 tasks + RQ with 1 and 2 workers on 1,000
    .venv/bin/python scripts/bench_bulk.py --tasks 2000 --rq-tasks 300 --rq-workers 1,2   # shorter

A real Label Studio (``tests/support/label_studio.py``) and the real service (gunicorn, default
settings, PREDICT_BUDGET_SECONDS=40) serving the shapes model (``tests/support/trained_model.py``).
Part 1: ``--tasks`` generated images in one project; *Retrieve predictions* on all of them through
Label Studio's Data Manager action; a task still queued is opened while the job runs; then every
task must hold exactly one prediction of the current version. Reported: how long the action took,
how many tasks its /predict answered, the job's time and rate, whether Label Studio logged a
timeout. Part 2: the same job from ``POST /bulk/start`` (``yolo-ls prelabel --backend``) with
REDIS_URL set and N ``rq worker`` processes on this machine, one fresh project each.
Writes docs/bulk.json; docs/bulk.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from tests.e2e import projects  # noqa: E402
from tests.e2e.conftest import MODEL_FILE, backend_env  # noqa: E402
from tests.support.backend_server import BackendServer, start_backend  # noqa: E402
from tests.support.label_studio import LabelStudioServer, free_port, start_label_studio  # noqa: E402
from tests.support.trained_model import trained_shapes_model  # noqa: E402


def write_images(folder: Path, count: int, size: int) -> list[Path]:
    """Small generated images, a square and a circle each at varied places and sizes (fast to write)."""
    import random

    folder.mkdir(parents=True, exist_ok=True)
    rng, paths = random.Random(count), []
    for i in range(count):
        img = Image.new("RGB", (size, size), (rng.randint(0, 60),) * 3)
        draw = ImageDraw.Draw(img)
        for shape in ("square", "circle"):
            side = rng.randint(size // 6, size // 3)
            x, y = rng.randint(0, size - side), rng.randint(0, size - side)
            (draw.rectangle if shape == "square" else draw.ellipse)((x, y, x + side, y + side),
                                                                    fill=tuple(rng.randint(120, 255) for _ in "rgb"))
        path = folder / f"{i:05d}.png"
        img.save(path)
        paths.append(path)
    return paths


def new_project(ls: LabelStudioServer, title: str, count: int, size: int) -> int:
    project = projects.create_project(ls, title)
    paths = write_images(ls.document_root / f"bench-{project}", count, size)
    projects.add_local_storage(ls, project, paths[0].parent)
    for start in range(0, count, 2000):
        tasks = [{"data": {"image": ls.local_files_url(p)}} for p in paths[start:start + 2000]]
        ls.api("POST", f"/api/projects/{project}/import", json=tasks).raise_for_status()
    return project


def per_task(ls: LabelStudioServer, project: int) -> tuple[Counter, set[str]]:
    """How many predictions each task holds (a Counter of counts), and their versions."""
    ids = projects.task_ids_all(ls, project)
    counts = Counter({task: 0 for task in ids})
    versions = set()
    answer = ls.api("GET", "/api/predictions", params={"project": project}, timeout=600)
    answer.raise_for_status()
    for prediction in answer.json():
        counts[prediction["task"]] += 1
        versions.add(prediction["model_version"])
    return Counter(counts.values()), versions


def job_of(server: BackendServer, project: int) -> dict[str, Any] | None:
    jobs = requests.get(f"{server.url}/bulk/status", params={"project": project}, timeout=30).json()["jobs"]
    return jobs[-1] if jobs else None


def wait_done(server: BackendServer, project: int, limit: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        job = job_of(server, project)
        if job and job["state"] != "running":
            return job
        time.sleep(2)
    raise TimeoutError(f"project {project}: the bulk job did not end in {limit:.0f} s")


def retrieve(ls: LabelStudioServer, model_root: Path, work: Path, count: int, size: int) -> dict[str, Any]:
    server = start_backend(work / "backend-retrieve", backend_env(ls, model_root))
    try:
        project = new_project(ls, f"bench: retrieve {count}", count, size)
        ml = projects.connect_backend(ls, project, server.url, title="yolo-bulk")
        log_before = ls.log_path.stat().st_size
        started = time.monotonic()
        ls.api("POST", "/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
               json={"selectedItems": {"all": True, "excluded": []}}, timeout=900).raise_for_status()
        action_s = time.monotonic() - started
        job = job_of(server, project)
        queued = job["total"] if job else 0
        opened = None
        if job:  # a task the job has not reached: opened now, predicted on open
            last = max(projects.task_ids_all(ls, project))
            t0 = time.monotonic()
            found = projects.open_task(ls, last)["predictions"]
            opened = {"task": last, "seconds": round(time.monotonic() - t0, 2),
                      "versions": [p["model_version"] for p in found]}
            job = wait_done(server, project, limit=6 * 3600)
        total_s = time.monotonic() - started
        counts, versions = per_task(ls, project)
        log = ls.log_path.read_bytes()[log_before:].decode(errors="replace")
        return {"tasks": count, "action_s": round(action_s, 1), "answered_in_request": count - queued,
                "job": job, "all_predicted_s": round(total_s, 1), "predictions_per_task": dict(counts),
                "versions": sorted(versions), "current_version": ml.model_version, "opened": opened,
                "label_studio_timeouts": log.count("Read timed out") + log.count("ReadTimeout"),
                "label_studio_errors": [line for line in log.splitlines() if "ML backend" in line][:5]}
    finally:
        server.stop()


def rq_throughput(ls: LabelStudioServer, model_root: Path, work: Path, count: int, size: int,
                  workers: int) -> dict[str, Any]:
    redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    redis = subprocess.Popen([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    model_dir = work / f"model-dir-rq{workers}"
    env = backend_env(ls, model_root, REDIS_URL=url, MODEL_DIR=str(model_dir),
                      LOCAL_FILES_DOCUMENT_ROOT=str(ls.document_root))
    server = start_backend(work / f"backend-rq{workers}", env)
    worker_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    rq = [str(Path(sys.executable).with_name("rq")), "worker", "--url", url, "yolo-bulk"]
    procs = []
    try:
        project = new_project(ls, f"bench: rq {workers} workers", count, size)
        projects.connect_backend(ls, project, server.url, title="yolo-bulk")
        procs = [subprocess.Popen(rq, env=worker_env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for _ in range(workers)]
        started = time.monotonic()
        requests.post(f"{server.url}/bulk/start", json={"project": project}, timeout=600).raise_for_status()
        job = wait_done(server, project, limit=3 * 3600)
        seconds = time.monotonic() - started
        counts, _ = per_task(ls, project)
        return {"workers": workers, "tasks": count, "seconds": round(seconds, 1),
                "tasks_per_s": round(count / seconds, 2), "job_rate_per_s": job["rate_per_s"],
                "predictions_per_task": dict(counts), "failed": job["failed"]}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(60)  # a warm shutdown finishes its chunk first
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        server.stop()
        redis.terminate()
        redis.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10000, help="tasks selected for Retrieve predictions (0: skip)")
    parser.add_argument("--rq-tasks", type=int, default=1000, help="tasks per RQ throughput run")
    parser.add_argument("--rq-workers", default="1,2", help="rq worker counts to compare ('': skip)")
    parser.add_argument("--size", type=int, default=160, help="image side in px")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bulk.json")
    args = parser.parse_args()
    # a run of one part keeps the other part's figures from an earlier run
    report: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.update(args={k: str(v) for k, v in vars(args).items()}, cpus=os.cpu_count())
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        work = Path(tmp)
        model_root = work / "model-root"
        model_root.mkdir()
        (model_root / MODEL_FILE).write_bytes(trained_shapes_model().read_bytes())
        ls = start_label_studio(work / "label-studio")
        try:
            if args.tasks:
                report["retrieve"] = retrieve(ls, model_root, work, args.tasks, args.size)
                print(json.dumps(report["retrieve"], indent=1), flush=True)
                args.out.write_text(json.dumps(report, indent=1))
            report["rq"] = []
            for workers in [int(w) for w in args.rq_workers.split(",") if w]:
                report["rq"].append(rq_throughput(ls, model_root, work, args.rq_tasks, args.size, workers))
                print(json.dumps(report["rq"][-1]), flush=True)
                args.out.write_text(json.dumps(report, indent=1))
        finally:
            ls.stop()


if __name__ == "__main__":
    main()
