"""Annotated tasks of a project: from Label Studio's API, or from an export file.

Label Studio is the source of truth: a run reads the project's label config and its
tasks with annotations through ``label-studio-sdk``; nothing from a webhook body is
used as training data. The rest of the pipeline works on plain task dicts, so this
module is the only one that talks to the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings

LABEL_STUDIO = "label-studio"  # source spec: the project's tasks through the API
FILE_PREFIX = "file:"  # source spec: "file:<path>" to {"label_config": ..., "tasks": [...]} (a JSON export)


@dataclass(frozen=True)
class ProjectData:
    """What a run trains on: the label config and task dicts in Label Studio's format."""

    label_config: str
    tasks: list[dict[str, Any]]


def load_project(settings: Settings, project: str, source: str = LABEL_STUDIO) -> ProjectData:
    """Read the project's data from ``source`` (see the two specs above)."""
    if source.startswith(FILE_PREFIX):
        data = json.loads(Path(source[len(FILE_PREFIX):]).read_text())
        return ProjectData(data["label_config"], list(data["tasks"]))
    if source != LABEL_STUDIO:
        raise ValueError(f"unknown training data source {source!r}: use {LABEL_STUDIO!r} or 'file:<path>'")
    return fetch_from_label_studio(settings, project)


def fetch_from_label_studio(settings: Settings, project: str) -> ProjectData:
    """The project's label config and annotated tasks, through the SDK (legacy token or PAT)."""
    if not settings.label_studio_api_key:
        raise RuntimeError("set LABEL_STUDIO_API_KEY (a legacy token or a personal access token, from "
                           "Label Studio's Account & Settings) so training can read the project's annotations")
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=settings.label_studio_url, api_key=settings.label_studio_api_key,
                         timeout=settings.http_timeout)
    config = client.projects.get(id=int(project)).label_config or ""
    tasks = []
    for task in client.tasks.list(project=int(project), fields="all", page_size=100):
        tasks.append(task.model_dump(mode="json") if hasattr(task, "model_dump") else dict(task))
    return ProjectData(config, tasks)
