"""Flood a running backend's /webhook on loopback and print what it did to the service.

    .venv/bin/python scripts/flood_webhook.py --url http://127.0.0.1:9090 --known 7,8 --pid <gunicorn master pid>

``--posts`` webhook posts (default 2,000) from ``--clients`` concurrent clients (default 20), bounded
by ``--seconds``: random real Label Studio event names, random project ids with the ``--known``
ones among them (``--known-share`` of the posts). Meanwhile a separate process asks ``/health``
back to back (so the flood's own threads do not slow the probe). Prints the posts sent, the
answers by status, /health p50/p99 and, with ``--pid`` (the backend on this machine, Linux),
the most training processes alive at once and the web workers' RSS at start and end.
``--json`` prints one JSON line instead. Traffic goes to the given URL only: point it at loopback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

EVENTS = ("START_TRAINING", "ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED",
          "ANNOTATIONS_DELETED", "TASKS_CREATED", "TASKS_DELETED", "PROJECT_UPDATED")
JOB = "yolo_backend.training.job"  # what a training process runs
HEADERS = {"Content-Type": "application/json", "User-Agent": "flood_webhook"}


def event_body(rng: random.Random, known: tuple[int, ...], known_share: float) -> dict[str, Any]:
    """A body shaped like Label Studio 1.23's (docs/training.md, "Events Label Studio sends")."""
    project = rng.choice(known) if known and rng.random() < known_share else rng.randint(1, 10**6)
    action = rng.choice(EVENTS)
    body: dict[str, Any] = {"action": action, "project": {"id": project, "title": "flood"}}
    if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
        body.update(annotation={"id": rng.randint(1, 10**6), "project": project}, task={"id": 1, "project": project})
    elif action == "ANNOTATIONS_CREATED":
        body.update(annotation=[{"id": i, "project": project} for i in range(rng.randint(1, 3))], task=[])
    elif action == "ANNOTATIONS_DELETED":
        body["annotations"] = [{"id": i} for i in range(rng.randint(1, 3))]
    elif action in ("TASKS_CREATED", "TASKS_DELETED"):
        body["tasks"] = [{"id": i, "total_annotations": rng.randint(0, 2)} for i in range(rng.randint(1, 3))]
    return body


# -- the processes of the backend (Linux /proc) -------------------------------------------------
def parents() -> dict[int, int]:
    """Every process of this machine: pid -> parent pid."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                table[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass  # it ended meanwhile
    return table


def cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def process_tree(root: int) -> dict[int, str]:
    """Every descendant of ``root``: pid -> command line."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents().items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            tree[pid] = cmdline(pid)
            todo.append(pid)
    return tree


def rss_mb(pid: int) -> float:
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0.0
    return int(line.split()[1]) / 1024


def web_workers(master: int) -> list[int]:
    """gunicorn's workers: the master's children that are not training processes."""
    return [pid for pid, ppid in parents().items() if ppid == master and JOB not in cmdline(pid)]


class Sampler(threading.Thread):
    """Every 50 ms: training processes alive under the backend (and the most seen at once)."""

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True, name="sampler")
        self.master, self.most, self.samples = master, 0, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            alive = sum(JOB in cmd for cmd in process_tree(self.master).values())
            self.most, self.samples = max(self.most, alive), self.samples + 1
            self.stop.wait(0.05)


# -- /health, measured from another process ----------------------------------------------------
def probe_health(url: str, ready: Any, stop: Any, out: Any, timeout: float = 5.0) -> None:
    """GET /health, one after the other, until ``stop`` is set; puts the latencies (ms, None for a failure) on ``out``.

    ``ready`` is set after the first answer: the flood starts once the probe measures. An answer slower
    than ``timeout`` counts as a failure."""
    session, latencies = requests.Session(), []
    session.get(f"{url}/health", timeout=timeout)
    ready.set()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            ok = session.get(f"{url}/health", timeout=timeout).status_code == 200
        except requests.RequestException:
            ok = False
        latencies.append((time.perf_counter() - started) * 1000 if ok else None)
    out.put(latencies)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else float("nan")


# -- the flood ---------------------------------------------------------------------------------
def flood(url: str, posts: int = 2000, clients: int = 20, known: tuple[int, ...] = (), pid: int | None = None,
          seconds: float = 60.0, known_share: float = 0.2, seed: int = 1,
          timeout: float | None = None) -> dict[str, Any]:
    """Send the posts and measure; returns the figures (see the module docstring).

    A request slower than ``timeout`` counts as failed (default: 10 s a post, 5 s a /health probe). Tests
    pass a generous one, so that only a hang fails them; the speed is what the figures measure."""
    context = multiprocessing.get_context("spawn")
    ready, stop, out = context.Event(), context.Event(), context.Queue()
    prober = context.Process(target=probe_health, args=(url, ready, stop, out, timeout or 5.0), daemon=True)
    prober.start()
    if not ready.wait(60):
        raise RuntimeError(f"{url}/health did not answer the probe")
    sampler = Sampler(pid) if pid else None
    workers = web_workers(pid) if pid else []
    rss_start = {w: rss_mb(w) for w in workers}
    if sampler:
        sampler.start()
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    sent = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    rng = random.Random(seed)
    bodies = [json.dumps(event_body(rng, known, known_share)).encode() for _ in range(posts)]
    target = urlsplit(url)

    def client() -> None:
        # http.client with ready-made bodies: a light client leaves the shared CPU to the backend
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout or 10.0)
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= posts:
                    break
                body, sent[0] = bodies[sent[0]], sent[0] + 1
            started = time.perf_counter()
            try:
                connection.request("POST", "/webhook", body=body, headers=HEADERS)
                answer = connection.getresponse()
                data = answer.read()
                status = json.loads(data).get("status", "?") if answer.status == 200 else f"http {answer.status}"
            except (OSError, http.client.HTTPException, ValueError) as exc:
                status = f"error {type(exc).__name__}"
                connection.close()  # reconnects on the next request
            with lock:
                answers[status] += 1
                latencies.append((time.perf_counter() - started) * 1000)
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    stop.set()
    health = out.get(timeout=30)
    prober.join(timeout=10)
    if sampler:
        sampler.stop.set()
        sampler.join()
    ok = [x for x in health if x is not None]
    return {"posts": sent[0], "seconds": round(elapsed, 1), "answers": dict(answers.most_common()),
            "post_p50_ms": percentile(latencies, 0.5), "post_p99_ms": percentile(latencies, 0.99),
            "health_requests": len(health), "health_failures": len(health) - len(ok),
            "health_p50_ms": percentile(ok, 0.5), "health_p99_ms": percentile(ok, 0.99),
            "health_max_ms": round(max(ok), 1) if ok else None,
            "max_training_processes": sampler.most if sampler else None,
            "process_samples": sampler.samples if sampler else None,
            "worker_rss_mb_start": round(sum(rss_start.values()), 1) if pid else None,
            "worker_rss_mb_end": round(sum(rss_mb(w) for w in workers), 1) if pid else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the backend, e.g. http://127.0.0.1:9090")
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="stop sending after this long")
    parser.add_argument("--known", default="", help="project ids Label Studio knows, comma-separated")
    parser.add_argument("--known-share", type=float, default=0.2, help="share of the posts for --known ids")
    parser.add_argument("--pid", type=int, help="gunicorn master pid on this machine: count training processes")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    known = tuple(int(x) for x in args.known.split(",") if x.strip())
    figures = flood(args.url.rstrip("/"), args.posts, args.clients, known, args.pid, args.seconds, args.known_share)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
