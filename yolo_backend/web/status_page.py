"""The status page for people: one self-contained HTML page at ``/status`` (and ``/`` for browsers).

What it shows comes from what the service already keeps: the registry and status files
under MODEL_DIR (versions, scores, runs, decisions), each run's ``curves.json`` and kept
plots, the model store's state and problems, and this worker's Prometheus metrics.
``gather`` reads (files only, never a model, never a blocking network call), ``render``
turns plain data into HTML: charts are inline SVG drawn here, every text is escaped, and
there are no scripts, assets or build step.
"""

from __future__ import annotations

import threading
import time
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from ..core.durable import read_json
from ..core.registry import PROJECT_ID, Registry, project_dir, run_files
from ..core.status import StatusBook

PLOTS = {"results": "results.png", "confusion_matrix": "confusion_matrix.png",
         "confusion_matrix_normalized": "confusion_matrix_normalized.png"}  # the only files /status/plot serves
BULK_ROWS = 5  # a project's newest bulk jobs shown
MAX_PROJECTS = 50  # a page, not a dump: ?project= shows any one
VERSION_ROWS = 30  # newest versions in the table; the chart shows all
RUN_ROWS = 10
PROBE_EVERY_S = 30.0  # Label Studio is asked at most this often, in the background


def plot_path(model_dir: Path, project: str, version: str, name: str) -> Path | None:
    """The kept plot ``name`` of ``version``, found through the registry only; None when there is none."""
    if name not in PLOTS:
        return None
    try:
        entry = next((v for v in Registry(model_dir, project).load()["versions"] if v["version"] == version), None)
        path = run_files(model_dir, project, str(entry["run_id"])) / PLOTS[name] if entry else None
    except (ValueError, KeyError):
        return None
    if path is None or not path.is_file() or not path.resolve().is_relative_to(model_dir.resolve()):
        return None
    return path


class LabelStudioProbe:
    """Whether LABEL_STUDIO_URL answers, checked in a background thread so the page never waits on it."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout
        self.result: tuple[float, str | None] | None = None  # (when, what is wrong or None)
        self._lock = threading.Lock()
        self._checking = False

    def latest(self) -> tuple[float, str | None] | None:
        """The last answer (None before the first), starting a new check when it is stale."""
        with self._lock:
            stale = self.result is None or time.monotonic() - self.result[0] > PROBE_EVERY_S
            if stale and not self._checking and self.url:
                self._checking = True
                threading.Thread(target=self._check, daemon=True, name="label-studio-probe").start()
            return self.result

    def _check(self) -> None:
        try:
            requests.get(f"{self.url}/health", timeout=self.timeout, allow_redirects=False)
            wrong = None  # any HTTP answer: it is up (auth is the token's business, reported by runs)
        except requests.RequestException as exc:
            wrong = f"Label Studio at {self.url} is unreachable ({type(exc).__name__})"
        with self._lock:
            self.result, self._checking = (time.monotonic(), wrong), False


# -- gather: files and metrics -> plain data ---------------------------------------------------------------
def gather(backend: Any, started: float, probe: LabelStudioProbe | None, only: str | None = None,
           bulk: Any = None) -> dict[str, Any]:
    """Everything the page shows, as plain data; ``only`` limits it to one project (ValueError if malformed).

    ``bulk``: the service's ``BulkJobs``, whose recent jobs each project lists."""
    model_dir: Path = backend.settings.model_dir_path
    store = backend.store
    if only is not None:
        project_dir(model_dir, only)
    projects = [only] if only is not None else known_projects(model_dir, backend)
    views = [project_view(backend, model_dir, p) for p in projects[:MAX_PROJECTS]]
    for view in views:
        view["bulk"] = bulk.status(view["project"])["jobs"][-BULK_ROWS:] if bulk is not None else []
    problems = list(store.problems)
    if store.state.value in ("no_weights", "error"):
        problems.insert(0, f"base model {store.state.value.replace('_', ' ')}: {store.message}")
    problems += [f"project {v['project']}: the last run failed: {v['last']['reason']}" for v in views
                 if v["last"] and v["last"]["state"] == "failed" and not v["current"]]
    checked = probe.latest() if probe and backend.settings.label_studio_api_key else None
    if checked and checked[1]:
        problems.append(checked[1])
    return {"state": store.state.value, "base_version": store.base_version, "problems": problems,
            "uptime_s": time.time() - started, "serving": serving(backend.metrics, started), "projects": views,
            "more_projects": max(0, len(projects) - MAX_PROJECTS)}


def known_projects(model_dir: Path, backend: Any) -> list[str]:
    """Projects with files under MODEL_DIR, and the ones Label Studio named in /setup to this worker."""
    found = {p.name for p in (model_dir / "projects").glob("*") if p.is_dir() and PROJECT_ID.fullmatch(p.name)}
    seen = getattr(backend, "_controls", {})  # YOLOBackend remembers each project's controls from /setup
    found |= {str(p) for p in list(seen) if p is not None and PROJECT_ID.fullmatch(str(p))}
    return sorted(found, key=lambda p: (not p.isdigit(), int(p) if p.isdigit() else 0, p))


def project_view(backend: Any, model_dir: Path, project: str) -> dict[str, Any]:
    """One project's versions, runs and curves, from its files; a project never trained has none, and gets no folder."""
    registry = Registry(model_dir, project).load()
    history = (StatusBook(model_dir, project).read().get("history") or [])[::-1]
    status = getattr(backend.trainer, "status", lambda p: {})(project)  # also closes a run whose worker died
    current = status.get("run")
    shown = current or (history[0] if history else None)  # the run whose curves are drawn
    served = next((v for v in registry["versions"] if v["version"] == registry["served"]), None)
    plots = [name for name in PLOTS if served and plot_path(model_dir, project, served["version"], name)]
    return {"project": project, "serving": backend.current_version(project) or (served or {}).get("version"),
            "served": served, "versions": registry["versions"], "state": status.get("state", "idle"),
            "current": current, "last": history[0] if history else None, "runs": history[:RUN_ROWS],
            "curve_run": shown, "curve": _curve(model_dir, project, shown), "plots": plots}


def _curve(model_dir: Path, project: str, run: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's ``curves.json`` (written by ``fitting.EpochCurve`` each epoch); None before its first epoch."""
    if not run:
        return None
    try:
        return read_json(run_files(model_dir, project, run["run_id"]) / "curves.json", None)
    except (ValueError, OSError):
        return None


def serving(metrics: Any, started: float) -> dict[str, Any]:
    """Prediction latency and throughput from this worker's Prometheus metrics (since it started)."""
    tasks = sum(s.value for m in metrics.tasks.collect() for s in m.samples if s.name.endswith("_total"))
    return {"inference": _histogram(metrics.inference), "fetch": _histogram(metrics.fetch),
            "predict": _histogram(metrics.latency, "/predict"), "tasks": int(tasks),
            "tasks_per_min": tasks / max(time.time() - started, 1e-9) * 60}


def _histogram(family: Any, route: str | None = None) -> dict[str, Any]:
    """Count, mean, p50/p95 (the bucket bound they fall under) and per-second rate of one histogram."""
    count, total, buckets = 0.0, 0.0, []
    for sample in (s for m in family.collect() for s in m.samples if route in (None, s.labels.get("route"))):
        if sample.name.endswith("_count"):
            count = sample.value
        elif sample.name.endswith("_sum"):
            total = sample.value
        elif sample.name.endswith("_bucket"):
            buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()

    def under(q: float) -> float | None:
        return next((le for le, cumulative in buckets if cumulative >= q * count), None) if count else None

    return {"count": int(count), "mean": total / count if count else None, "p50": under(0.5), "p95": under(0.95),
            "per_s": count / total if total else None}



# -- render: plain data -> HTML (every text escaped; charts are SVG drawn from numbers) ----------------------
CSS = """body{font:14px system-ui,sans-serif;margin:24px;color:#1d2430;background:#f6f7f9}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:12px 16px;margin:0 0 16px}
h1{font-size:20px}h2{font-size:17px;margin:4px 0 8px}h3{font-size:14px;margin:12px 0 6px}
table{border-collapse:collapse}td,th{padding:3px 12px 3px 0;text-align:left;vertical-align:top}
th{color:#5a6473;font-weight:600}.bad{color:#b42318}.ok{color:#067647}.muted{color:#5a6473}
.problems{border-color:#f3a59d;background:#fff4f2}.charts{display:flex;flex-wrap:wrap;gap:12px}
img{max-width:480px;border:1px solid #dde1e7;margin:4px 8px 0 0;vertical-align:top}
svg text{font:11px system-ui,sans-serif}"""
COLORS = ("#1f6feb", "#d9480f", "#2f9e44", "#7048e8")
BUSY = ("queued", "running")


def render(view: dict[str, Any]) -> str:
    """The whole page; it reloads itself every 5 s while a run is queued or going, every 30 s otherwise."""
    refresh = 5 if any(p["state"] in BUSY or any(j["state"] == "running" for j in p.get("bulk", []))
                       for p in view["projects"]) else 30
    wrong = "".join(f"<li class='bad'>{_e(p)}</li>" for p in view["problems"])
    body = [f"<h1>YOLO ML backend: status</h1><p>Base model <b>{_e(view['base_version'])}</b> "
            f"({_e(view['state'])}), up {_duration(view['uptime_s'])}. JSON: <a href='health'>health</a>, "
            f"<a href='metrics'>metrics</a>, <a href='openapi.json'>API</a>.</p>",
            f"<section class='problems'><h2>What is wrong</h2><ul>{wrong}</ul></section>" if wrong else
            "<section><h2>What is wrong</h2><p class='ok'>Nothing: the model serves and no last run failed.</p>"
            "</section>", _serving(view["serving"])]
    body += [_project(p) for p in view["projects"]] or [
        "<section><p class='muted'>No project yet: Label Studio names its projects when it connects.</p></section>"]
    if view["more_projects"]:
        body.append(f"<p class='muted'>{view['more_projects']} more projects: open status?project=ID.</p>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>YOLO backend status</title>"
            f"<meta http-equiv='refresh' content='{refresh}'><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>")


def _serving(stats: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{name}</td><td>{h['count']}</td><td>{_ms(h['p50'], '&le; ')}</td>"
                   f"<td>{_ms(h['p95'], '&le; ')}</td><td>{_ms(h['mean'])}</td><td>{_num(h['per_s'], 1)}</td></tr>"
                   for name, h in (("inference, per image", stats["inference"]),
                                   ("image fetch and decode", stats["fetch"]), ("/predict request", stats["predict"])))
    return ("<section><h2>Predictions (this worker, since it started)</h2><table><tr><th></th><th>count</th>"
            "<th>p50</th><th>p95</th><th>mean</th><th>per second busy</th></tr>" + rows + "</table>"
            f"<p>{stats['tasks']} tasks answered, {stats['tasks_per_min']:.1f} per minute.</p></section>")


def _project(p: dict[str, Any]) -> str:
    name = p["project"]
    served = p["served"]
    scores = _scores((served or {}).get("metrics"))
    head = (f"<h2>Project {_e(name)}</h2><p>Serves <b>{_e(p['serving'] or 'the base model')}</b>"
            + (f": holdout F1 {scores['f1']}, {scores['metric']} {scores['quality']}, mAP50 {scores['map50']} "
               f"on {scores['images']} images; labels {_e(', '.join(map(str, served.get('labels') or [])))}"
               if served else " (no trained version yet)") + ".</p>")
    return (f"<section id='project-{_e(name)}'>{head}{_run(p)}{_bulk(p.get('bulk') or [])}{_versions(p)}"
            f"{_runs(p['runs'])}"
            f"{_plots(name, served, p['plots'])}</section>")


def _run(p: dict[str, Any]) -> str:
    run, shown, curve = p["current"], p["curve_run"], p["curve"] or {}
    if run and run["state"] == "running":
        g = run.get("progress") or {}
        text = (f"<b>running</b> {_e(run['run_id'])}: epoch {g.get('epoch', 0)} of {g.get('epochs', '?')}, "
                f"{_duration(g.get('elapsed_s'))} elapsed, about {_duration(g.get('remaining_s'))} left, "
                f"loss {_num(g.get('loss'), 3)}" + (f", {_e(g['phase'])}" if g.get("phase") else ""))
    elif run:
        text = f"<b>{_e(run['state'])}</b> {_e(run['run_id'])}: waits for the training worker"
    else:
        text = f"idle; curves of the last run {_e(shown['run_id'])} ({_e(shown['state'])})" if shown else "idle"
    points = curve.get("points") or []
    # Validation loss stays in curves.json and results.png: on its own scale, far below training loss, it drew flat.
    charts = "" if not points else "<div class='charts'>" + line_chart("training loss per epoch", [
        ("train loss", [(q["epoch"], q["loss"]) for q in points if q.get("loss") is not None])]) \
        + line_chart("validation score per epoch", [
            (label, [(q["epoch"], q[key]) for q in points if q.get(key) is not None])
            for key, label in (("map50", "mAP50"), ("map50_95", "mAP50-95"), ("top1", "top-1"))], top=1.0) + "</div>"
    return f"<h3>Training</h3><p>{text}.</p>{charts}"


def _bulk(jobs: list[dict[str, Any]]) -> str:
    """Bulk pre-labelling jobs (Retrieve predictions past the budget, yolo-ls prelabel --backend), newest last."""
    if not jobs:
        return ""
    rows = "".join(
        f"<tr><td>{_e(j['job'])}</td><td>{_e(j['origin'])}</td><td class='{'bad' if j['failed'] else ''}'>"
        f"{_e(j['state'])}</td><td>{j['stored'] + j['opened']} of {j['total']}</td><td>{j['opened']}</td>"
        f"<td>{j['failed']}</td><td>{_num(j['rate_per_s'], 1)}</td><td>{_duration(j['eta_s'])}</td>"
        f"<td>{_when(j['created'])}</td></tr>" for j in jobs)
    return ("<h3>Bulk pre-labelling</h3><table><tr><th>job</th><th>from</th><th>state</th><th>done</th>"
            "<th>opened first</th><th>failed</th><th>tasks/s</th><th>left</th><th>started</th></tr>" + rows +
            "</table><p class='muted'>Failures and details: bulk/status?project=ID; cancel: POST bulk/cancel "
            "{\"job\": ID}.</p>")


def _versions(p: dict[str, Any]) -> str:
    versions = p["versions"]
    if not versions:
        return ""
    rows = []
    for v in versions[::-1][:VERSION_ROWS]:
        s = _scores(v.get("metrics"))
        mark = "serves" if v["version"] == (p["served"] or {}).get("version") else ("removed" if v.get("removed")
                                                                                     else "")
        rows.append(f"<tr><td>{_e(v['version'])}</td><td>{mark}</td><td>{_when(v.get('created'))}</td>"
                    f"<td>{s['f1']}</td><td>{s['quality']} <span class='muted'>{s['metric']}</span></td>"
                    f"<td>{s['map50']}</td><td>{s['images']}</td><td>{_gain(v.get('metrics'))}</td>"
                    f"<td>{_engine(v.get('metrics'))}</td>"
                    f"<td>{_e(v.get('decision', ''))}</td></tr>")
    chart = line_chart("holdout score per version", [
        ("F1", [(v["number"], _float(_scores(v.get("metrics"))["f1"])) for v in versions]),
        ("mAP50-95 / top-1", [(v["number"], _float(_scores(v.get("metrics"))["quality"])) for v in versions])],
        top=1.0, x_name="version")
    return ("<h3>Versions</h3><table class='versions'><tr><th>version</th><th></th><th>created</th><th>F1</th>"
            "<th>score</th><th>mAP50</th><th>holdout images</th><th>F1 gain (interval)</th><th>engine</th>"
            "<th>why promoted</th></tr>"
            + "".join(rows)
            + f"</table><div class='charts'>{chart}</div>")


def _gain(metrics: Any) -> str:
    """The F1 gain over the model it replaced and its bootstrap interval (``scoring.Gain``): how sure the step was."""
    gain = metrics.get("gain") if isinstance(metrics, dict) else None
    if not isinstance(gain, dict) or not all(isinstance(gain.get(k), (int, float)) for k in ("f1", "low", "high")):
        return "-"
    level = gain.get("level")
    return (f"{gain['f1']:+.3f} <span class='muted'>[{gain['low']:+.3f}, {gain['high']:+.3f}]"
            + (f" {level:.0%}" if isinstance(level, (int, float)) else "") + "</span>")


def _engine(metrics: Any) -> str:
    """The engine a version's run checked (onnx, torch) and, with INT8 on, its int8 gate and why."""
    metrics = metrics if isinstance(metrics, dict) else {}
    runtime = metrics.get("runtime") if isinstance(metrics.get("runtime"), dict) else {}
    name = str(runtime.get("runtime", ""))
    gate = metrics.get("int8")
    if not isinstance(gate, dict):
        return _e(name)
    verdict = "int8" if gate.get("ok") is True else f"{name} (not int8)"
    return f"{_e(verdict)} <span class='muted'>{_e(str(gate.get('reason', '')))}</span>"


def _runs(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return ""
    rows = "".join(f"<tr><td>{_e(r['run_id'])}</td><td>{_e(r['state'])}</td><td>{_when(r.get('finished_at'))}</td>"
                   f"<td>{_e(r.get('version') or '')}</td><td>{_gain(r.get('metrics'))}</td>"
                   f"<td>{_e(r.get('reason', ''))}</td></tr>" for r in runs)
    return ("<h3>Last runs and why they ended so</h3><table class='runs'><tr><th>run</th><th>outcome</th>"
            "<th>finished</th><th>version</th><th>F1 gain (interval)</th><th>why</th></tr>" + rows + "</table>")


def _plots(project: str, served: dict[str, Any] | None, names: list[str]) -> str:
    if not served or not names:
        return ""
    images = "".join(f"<a href='{_e(url)}'><img src='{_e(url)}' alt='{_e(n)}' loading='lazy'></a>" for n in names
                     for url in ["status/plot?" + urlencode({"project": project, "version": served["version"],
                                                             "name": n})])
    return f"<h3>Ultralytics' plots of {_e(served['version'])}</h3>{images}"


def line_chart(title: str, series: list[tuple[str, list[tuple[float, float]]]], top: float | None = None,
               x_name: str = "epoch", width: int = 380, height: int = 180) -> str:
    """An SVG line chart: one path per series (points marked), y from 0 to ``top`` (else the data's maximum)."""
    series = [(name, points) for name, points in series if points]
    xs = [x for _, points in series for x, _ in points]
    if not xs:
        return ""
    ys = [y for _, points in series for _, y in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    top = top or (max(ys) * 1.1 if max(ys) > 0 else 1.0)
    left, right, up, down = 44, 12, 40, 30  # the title and the legend sit above the plot

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (width - left - right),
                up + (1 - min(max(y, 0.0), top) / top) * (height - up - down))

    parts = [f"<svg class='chart' role='img' aria-label='{_e(title)}' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' xmlns='http://www.w3.org/2000/svg'><rect width='100%' height='100%' "
             f"fill='#fff'/><text x='{left}' y='14' font-weight='600'>{_e(title)}</text>"]
    for fraction in (0.0, 0.5, 1.0):
        y = at(x0, top * fraction)[1]
        parts.append(f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e4e7ec'/>"
                     f"<text x='{left - 4}' y='{y:.1f}' text-anchor='end' dy='4'>{_tick(top * fraction)}</text>")
    parts.append(f"<text x='{left}' y='{height - 10}'>{_tick(x0)}</text><text x='{width - right}' "
                 f"y='{height - 10}' text-anchor='end'>{_e(x_name)} {_tick(x1 if len(set(xs)) > 1 else x0)}</text>")
    for i, (name, points) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        where = [at(x, y) for x, y in points]
        path = " ".join(f"{'L' if j else 'M'}{sx:.1f},{sy:.1f}" for j, (sx, sy) in enumerate(where))
        marks = "".join(f"<circle cx='{sx:.1f}' cy='{sy:.1f}' r='2.5' fill='{color}'><title>{_e(name)} {_tick(x)}: "
                        f"{_tick(y)}</title></circle>" for (sx, sy), (x, y) in list(zip(where, points))[-60:])
        parts.append(f"<path d='{path}' fill='none' stroke='{color}' stroke-width='2'><title>{_e(name)}</title>"
                     f"</path>{marks}<text x='{left + 110 * i}' y='30' fill='{color}'>&#9632; {_e(name)}</text>")
    return "".join(parts) + "</svg>"


def _scores(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The holdout scores a version was promoted on, formatted (``-`` where there are none)."""
    c = (metrics or {}).get("candidate") or {}
    classes = c.get("metric") == "top-1"
    return {"f1": _num(c.get("f1"), 3), "map50": "-" if classes else _num(c.get("map50"), 3),
            "quality": _num(c.get("top1") if classes else c.get("map50_95"), 3),
            "metric": "top-1" if classes else "mAP50-95", "images": c.get("images", "-")}


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _num(value: Any, digits: int) -> str:
    return "-" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{value:.{digits}f}"


def _float(text: str) -> float:
    return float(text) if text != "-" else 0.0


def _tick(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() or abs(value) >= 10 else f"{value:.2g}"


def _ms(seconds: float | None, prefix: str = "") -> str:
    return "-" if seconds is None else f"{prefix}{seconds * 1000:.0f} ms"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _when(stamp: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if isinstance(stamp, (int, float)) else "-"
