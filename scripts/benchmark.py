"""Speed of the backend against the plain Ultralytics way, measured in the same run.

    .venv/bin/python scripts/benchmark.py            # full: 1,200-task /predict, about 10 min on 2 cores
    .venv/bin/python scripts/benchmark.py --quick    # smoke run, about a minute
    .venv/bin/python scripts/benchmark.py --long 10000   # also RSS over 10,000 single-task requests
    .venv/bin/python scripts/benchmark.py --device cuda  # on a GPU machine (half precision, batches of 8)
    .venv/bin/python scripts/benchmark.py --engines fp32 --lanes 1   # one engine, bulk lanes off

Engines (``--engines``, default ``fp32,int8`` on a CPU): the backend is started once per engine,
the same run, and the report sets them side by side with the plain way. ``int8`` first makes and
judges the int8 copy exactly as ``yolo-ls int8`` does (the images' YOLO labels are the holdout)
and serves with ``INT8=true``; when the copy fails its gate, fp32 serves and the report says so.

Images: ../shared/datasets/coco128 when present (read in place, never copied), else
generated images of COCO's sizes. Model: --model, else models/yolov5nu.pt when present,
else yolov5nu built from its yaml with random (calibrated) weights: detections are
meaningless but the compute is that of the real network. The backend runs as in
production: ``gunicorn _wsgi:app`` with WORKERS=1, THREADS=8. See docs/speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")

from bench_plain import peak_rss_mb  # noqa: E402
from bench_stages import decode_costs, model_costs  # noqa: E402

from tests.support.backend_server import BackendServer, start_backend  # noqa: E402
from tests.support.image_server import ImageServer  # noqa: E402
from yolo_backend.serving.detector import checkpoint_imgsz  # noqa: E402

COCO128 = ROOT.parent / "shared" / "datasets" / "coco128" / "images" / "train2017"
COCO_SIZES = [(640, 480), (480, 640), (640, 427), (640, 426), (500, 375), (640, 512), (427, 640), (640, 360)]
LS_TIMEOUT_S = 100  # Label Studio's ML_TIMEOUT_PREDICT


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def image_set(workdir: Path) -> tuple[Path, list[str], str, Path]:
    """(document root, image names under it, where they come from, the YOLO folder judging int8)."""
    if COCO128.is_dir() and any(COCO128.glob("*.jpg")):
        return COCO128, sorted(p.name for p in COCO128.glob("*.jpg")), "coco128", COCO128.parent.parent
    from tests.support.synthetic import draw_sample, yolo_lines

    folder = workdir / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(128):
        target = folder / f"{i:03d}.jpg"
        if not target.exists():
            img, shapes = draw_sample(i, size=COCO_SIZES[i % len(COCO_SIZES)], max_shapes=6)
            img.save(target, quality=90)
            target.with_suffix(".txt").write_text("\n".join(yolo_lines(shapes, *img.size)) + "\n")
    return folder, sorted(p.name for p in folder.glob("*.jpg")), "generated (COCO sizes)", folder


def pick_model(requested: str, workdir: Path) -> Path:
    if requested:
        return Path(requested).resolve()
    if (ROOT / "models" / "yolov5nu.pt").is_file():
        return ROOT / "models" / "yolov5nu.pt"
    target = workdir / "model-root" / "yolov5nu-random.pt"  # about 0-16 boxes per COCO photo at 0.5
    if not target.is_file():
        from tests.support.random_model import build

        build(target, class_bias=-20.0)
    return target


def label_config(checkpoint: Path) -> str:
    from ultralytics import YOLO

    labels = "".join(f'<Label value="{name}"/>' for name in YOLO(str(checkpoint)).names.values())
    return (f'<View><Image name="image" value="$image"/>'
            f'<RectangleLabels name="label" toName="image">{labels}</RectangleLabels></View>')


def run_plain(checkpoint: Path, paths: list[Path], tasks: int, device: str, imgsz: int) -> dict:
    command = [sys.executable, str(ROOT / "scripts" / "bench_plain.py"), "--model", str(checkpoint),
               "--device", device, "--imgsz", str(imgsz), "--tasks", str(tasks), *map(str, paths)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the plain run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker_pid(server: BackendServer) -> int:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    return int(children[0])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(call: Callable[[], requests.Response]) -> float:
    started = time.perf_counter()
    answer = call()
    answer.raise_for_status()
    return time.perf_counter() - started


def predict(url: str, config: str, image_urls: list[str], timeout: float = 900) -> requests.Response:
    tasks = [{"id": i, "data": {"image": u}} for i, u in enumerate(image_urls)]
    return requests.post(f"{url}/predict", json={"tasks": tasks, "label_config": config, "project": "1.1"},
                         timeout=timeout)


def serve_and_measure(args: argparse.Namespace, checkpoint: Path, root: Path, names: list[str],
                      config: str, engine: str = "fp32") -> dict:
    """Everything measured over HTTP against gunicorn: protocol latencies, task open, bulk, RSS."""
    env = {"MODEL_ROOT": str(checkpoint.parent), "MODEL_PATH": checkpoint.name, "RUNTIME": args.runtime,
           "MODEL_DIR": str(args.workdir / "state"), "LOCAL_FILES_DOCUMENT_ROOT": str(root), "DEVICE": args.device,
           "IMGSZ": str(args.imgsz), "WORKERS": "1", "THREADS": "8", "MEDIA_ALLOWED_HOSTS": "127.0.0.1",
           "LOG_LEVEL": "INFO", "INT8": "true" if engine == "int8" else "false", "BULK_LANES": str(args.lanes)}
    server = start_backend(args.workdir / f"server-{engine}", env, timeout=600)  # the first start exports
    images = ImageServer(root)
    out: dict = {}
    try:
        url, pid = server.url, worker_pid(server)
        out["runtime"] = _served_runtime(server)
        n = 50 if args.quick else 200
        out["health"] = [timed(lambda: requests.get(f"{url}/health", timeout=5)) for _ in range(n)]
        body = {"project": "1.1", "schema": config}
        out["setup"] = [timed(lambda: requests.post(f"{url}/setup", json=body, timeout=5)) for _ in range(n)]
        local = [f"/data/local-files/?d={name}" for name in names]
        out["open_local"] = [timed(lambda u=u: predict(url, config, [u])) for u in local]
        # A unique query per request: every task open really downloads, as the first open of a task does.
        remote = [f"{images.url}/{name}?open={i}" for i, name in enumerate(names)]
        out["open_http"] = [timed(lambda u=u: predict(url, config, [u])) for u in remote]
        many = [local[i % len(local)] for i in range(args.tasks)]
        out["bulk_local_s"] = timed(lambda: predict(url, config, many))
        many = [f"{images.url}/{names[i % len(names)]}?bulk={i}" for i in range(args.tasks)]
        out["bulk_http_s"] = timed(lambda: predict(url, config, many))
        out["rss_samples"] = _long_run(url, config, local, pid, args.long) if args.long else []
        out["peak_rss_mb"] = peak_rss_mb(pid)
    finally:
        images.close()
        server.stop()
    return out


def _served_runtime(server: BackendServer) -> str:
    """The engine the worker picked, from its 'loaded ... with <runtime> at N px, T threads[, L bulk lanes]' line."""
    found = re.findall(r"loaded .* with ([\w-]+) at \d+ px, (\d+) threads(, \d+ bulk lanes)?",
                       server.log_path.read_text(errors="replace"))
    if not found:
        return "unknown (see the server log)"
    engine, threads, lanes = found[-1]
    return f"{engine}, {threads} threads{lanes}"


def _long_run(url: str, config: str, local: list[str], pid: int, count: int) -> list[tuple[int, float]]:
    """RSS of the worker every 1,000 single-task requests: a leak shows as a steady climb."""
    samples = [(0, rss_mb(pid))]
    for i in range(1, count + 1):
        predict(url, config, [local[i % len(local)]]).raise_for_status()
        if i % 1000 == 0 or i == count:
            samples.append((i, rss_mb(pid)))
            print(f"  long run: {i} requests, worker RSS {samples[-1][1]:.0f} MB", flush=True)
    return samples


def report(args: argparse.Namespace, source: str, checkpoint: Path, plain: dict, engines: dict[str, dict],
           stages: dict[str, dict], decode: dict, gate: dict | None) -> None:
    """Plain, fp32 and int8 side by side; each target with MET or MISSED."""
    ms = 1000.0
    plain_tps = args.tasks / plain["total_s"]
    base50, base95 = pct(plain["latencies"], 50), pct(plain["latencies"], 95)
    print(f"\n== setup: images {source}, model {checkpoint.name}, imgsz {args.imgsz} ({args.pixels} px), "
          f"device {args.device}, cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, "
          f"BULK_LANES={args.lanes}")
    for name, ours in engines.items():
        print(f"  {name}: served {ours['runtime']}; /health p99 {pct(ours['health'], 99) * ms:.1f} ms, "
              f"/setup p99 {pct(ours['setup'], 99) * ms:.1f} ms")
    if gate is not None:
        print(f"  int8 gate ({gate.get('judged_images', '?')} judged images): {gate['reason']}")
    width = 26
    head = f"  {'':34s}{'plain Ultralytics':>{width}s}" + "".join(f"{name:>{width}s}" for name in engines)
    print("== side by side (ratios are to the plain way, same run)")
    print(head)

    def row(label: str, plain_text: str, cells: list[str]) -> None:
        print(f"  {label:34s}{plain_text:>{width}s}" + "".join(f"{c:>{width}s}" for c in cells))

    for label, key in (("task open p50, local-files", "open_local"), ("task open p95, local-files", "open_local"),
                       ("task open p50, HTTP images", "open_http")):
        q, base = (95, base95) if "p95" in label else (50, base50)
        row(label, f"{base * ms:.1f} ms", [f"{pct(o[key], q) * ms:.1f} ms ({pct(o[key], q) / base:.2f}x)"
                                           for o in engines.values()])
    row(f"{args.tasks}-task /predict, local-files", f"{plain['total_s']:.1f} s {plain_tps:.2f}/s",
        [f"{o['bulk_local_s']:.1f} s ({args.tasks / o['bulk_local_s'] / plain_tps:.2f}x)" for o in engines.values()])
    row(f"{args.tasks}-task /predict, HTTP images", "",
        [f"{o['bulk_http_s']:.1f} s ({args.tasks / o['bulk_http_s'] / plain_tps:.2f}x)" for o in engines.values()])
    row("peak RSS (VmHWM)", f"{plain['peak_rss_mb']:.0f} MB", [f"{o['peak_rss_mb']:.0f} MB" for o in engines.values()])
    targets = {"fp32": (2.0, 0.55), "int8": (3.5, 0.35)}
    print("== targets (issue 16)")
    for name, ours in engines.items():
        throughput, latency = targets.get(name, (2.0, 0.55))
        ratio = args.tasks / ours["bulk_local_s"] / plain_tps
        opened = pct(ours["open_local"], 50) / base50
        in_time = ours["bulk_local_s"] < LS_TIMEOUT_S * args.tasks / 1200
        print(f"  {name}: bulk {ratio:.2f}x >= {throughput}x -> {'MET' if ratio >= throughput else 'MISSED'}; "
              f"task open p50 {opened:.2f}x <= {latency}x -> {'MET' if opened <= latency else 'MISSED'}; "
              f"inside Label Studio's 100 s -> {'MET' if in_time else 'MISSED'}"
              + ("" if args.tasks == 1200 else f" (scaled to {args.tasks} tasks)")
              + f"; peak RSS <= 1536 MB -> {'MET' if ours['peak_rss_mb'] <= 1536 else 'MISSED'}")
        if ours["rss_samples"]:
            samples = ours["rss_samples"]
            first, last = samples[min(1, len(samples) - 1)][1], samples[-1][1]
            print(f"  {name} long run {samples}: growth after the first 1,000 requests {last - first:+.0f} MB")
    print("== where the time goes (median ms per image)")
    print("  plain, Ultralytics' split: " + ", ".join(f"{k} {v:.1f}" for k, v in plain["stages_ms"].items())
          + f" (torch threads {plain['torch_threads']})")
    for name, costs in stages.items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in costs.items()))
    print("  decode: " + ", ".join(f"{k} {v:.1f}" for k, v in decode.items()))


def judge_int8(args: argparse.Namespace, checkpoint: Path, holdout: Path) -> dict:
    """The int8 copy made and judged as ``yolo-ls int8`` does, into the state the server reads."""
    os.environ["MODEL_DIR"] = str(args.workdir / "state")
    from yolo_backend.config import Settings
    from yolo_backend.training.quantize import for_base

    settings = Settings.from_env({**os.environ, "IMGSZ": str(args.imgsz), "DEVICE": args.device})
    return for_base(checkpoint, holdout, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60 tasks, 20 task opens: a smoke run of a minute")
    parser.add_argument("--tasks", type=int, default=1200, help="tasks in the one bulk /predict (default 1200)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    parser.add_argument("--runtime", default="auto", help="RUNTIME of the backend: auto, torch, onnx, openvino")
    parser.add_argument("--engines", default="", help="fp32,int8 (default on a CPU with ONNX Runtime) or fp32")
    parser.add_argument("--lanes", default="0", help="BULK_LANES of the backend (0: one per core; 1: off)")
    parser.add_argument("--imgsz", default="auto", help="IMGSZ of the backend: auto (the checkpoint's) or pixels")
    parser.add_argument("--model", default="", help="checkpoint to serve (default: see above)")
    parser.add_argument("--long", type=int, default=0, help="also send this many single-task requests, tracking RSS")
    parser.add_argument("--workdir", type=Path, default=ROOT / "data" / "benchmark")
    args = parser.parse_args()
    if args.quick:
        args.tasks = min(args.tasks, 60)
    args.workdir = args.workdir.resolve()
    root, names, source, holdout = image_set(args.workdir)
    names = names[:20] if args.quick else names
    checkpoint = pick_model(args.model, args.workdir)
    config = label_config(checkpoint)
    on_cpu = args.device == "cpu" and args.runtime in ("auto", "onnx")
    engines = (args.engines or ("fp32,int8" if on_cpu else "fp32")).split(",")
    # The plain run and the stage costs call Ultralytics directly: they get the size in pixels.
    args.pixels = checkpoint_imgsz(checkpoint) if args.imgsz == "auto" else int(args.imgsz)
    print(f"plain Ultralytics: {args.tasks} tasks one at a time ...", flush=True)
    plain = run_plain(checkpoint, [root / n for n in names], args.tasks, args.device, args.pixels)
    gate = None
    measured, stages = {}, {}
    paths = [root / n for n in names[:40]]
    for engine in engines:
        if engine == "int8":
            print("int8: making and judging the copy (yolo-ls int8) ...", flush=True)
            gate = judge_int8(args, checkpoint, holdout)
        print(f"our backend under gunicorn, {engine} ...", flush=True)
        measured[engine] = serve_and_measure(args, checkpoint, root, names, config, engine)
        print(f"stage costs, {engine} ...", flush=True)
        stages[engine] = model_costs(paths, checkpoint, args.runtime, args.workdir / "state" / "runtime",
                                     args.pixels, args.device, int8=engine == "int8")
    report(args, source, checkpoint, plain, measured, stages, decode_costs(paths, args.pixels), gate)


if __name__ == "__main__":
    main()
