"""Training gauges for ``/metrics``, read from the status and registry files at scrape time.

Runs happen in another process (or machine), so the web worker cannot count them as
they go; the files in MODEL_DIR are the truth and are cheap to read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..core.durable import read_json
from ..core.state import RunState


class TrainingCollector(Collector):
    """One sample per project and gauge; registered on the app's own Prometheus registry."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {name: GaugeMetricFamily(f"yolo_backend_training_{name}", why, labels=labels)
                    for name, (why, labels) in FAMILIES.items()}
        for folder in sorted((self.model_dir / "projects").glob("*")):
            _add_project(folder, families)
        yield from families.values()


FAMILIES = {
    "state": ("1 for the project's current training state", ["project", "state"]),
    "run_epoch": ("Epoch the running training is in", ["project"]),
    "run_epochs": ("Epochs planned for the running training", ["project"]),
    "run_loss": ("Training loss of the last finished epoch", ["project"]),
    "recent_runs": ("Finished runs in the status file's history, by outcome", ["project", "outcome"]),
    "served_version": ("Number of the served version (p<project>-v<number>)", ["project"]),
    "served_map50_95": ("Holdout mAP50-95 of the served version", ["project"]),
}


def _add_project(folder: Path, families: dict[str, GaugeMetricFamily]) -> None:
    project = folder.name
    status = read_json(folder / "status.json", {}) or {}
    current = status.get("current") or {}
    families["state"].add_metric([project, current.get("state", "idle")], 1)
    progress = current.get("progress") or {}
    if current.get("state") == RunState.RUNNING.value and progress:
        families["run_epoch"].add_metric([project], progress.get("epoch", 0))
        families["run_epochs"].add_metric([project], progress.get("epochs", 0))
        if progress.get("loss") is not None:
            families["run_loss"].add_metric([project], progress["loss"])
    for outcome in (s.value for s in RunState if s.finished):
        count = sum(1 for run in status.get("history") or [] if run.get("state") == outcome)
        families["recent_runs"].add_metric([project, outcome], count)
    registry = read_json(folder / "registry.json", {}) or {}
    served = next((v for v in registry.get("versions") or [] if v["version"] == registry.get("served")), None)
    if served:
        families["served_version"].add_metric([project], served.get("number", 0))
        map50_95 = ((served.get("metrics") or {}).get("candidate") or {}).get("map50_95")
        if map50_95 is not None:
            families["served_map50_95"].add_metric([project], map50_95)
