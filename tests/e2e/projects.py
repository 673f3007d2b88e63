"""Setting up Label Studio projects through its API, as a user's script would.

Shared by the e2e checks and ``scripts/demo.py``; everything goes through
``label-studio-sdk`` or Label Studio's documented HTTP API, nothing touches its database.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.support.label_studio import LabelStudioServer
from tests.support.sample_images import Sample

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="square" background="#e53935"/>
    <Label value="circle" background="#1e88e5"/>
  </RectangleLabels>
</View>"""


def create_project(ls: LabelStudioServer, title: str) -> int:
    project = ls.client().projects.create(title=title, label_config=LABEL_CONFIG)
    return int(project.id)


def connect_backend(ls: LabelStudioServer, project: int, url: str, title: str = "yolo", **auth: Any) -> Any:
    """``ml.create``: Label Studio checks ``/health`` and ``/setup`` before it saves the backend."""
    return ls.client().ml.create(project=project, url=url, title=title, is_interactive=False, **auth)


def upload_images(ls: LabelStudioServer, project: int, paths: list[Path]) -> list[int]:
    """Multipart upload to ``/api/projects/<id>/import``; one task per file, ids in file order."""
    # one form field per file: Label Studio keeps only the last file of a repeated field name
    files = {f"file{i}": (p.name, p.read_bytes(), "image/jpeg") for i, p in enumerate(paths)}
    answer = ls.api("POST", f"/api/projects/{project}/import", files=files, params={"return_task_ids": "true"})
    answer.raise_for_status()
    return [int(t) for t in answer.json()["task_ids"]]


def add_local_storage(ls: LabelStudioServer, project: int, folder: Path) -> int:
    """A local-files import storage on ``folder``: Label Studio serves files only under such a storage."""
    storage = ls.client().import_storage.local.create(project=project, path=str(folder), regex_filter=r".*\.jpg",
                                                      use_blob_urls=True, title=folder.name)
    return int(storage.id)


def sync_local_folder(ls: LabelStudioServer, project: int, folder: Path, expected: int,
                      timeout: float = 60.0) -> None:
    """Tasks from a local-files storage sync, waited for until there are ``expected`` tasks."""
    ls.client().import_storage.local.sync(id=add_local_storage(ls, project, folder))
    deadline = time.monotonic() + timeout
    while len(task_ids(ls, project)) < expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"local-files sync of {folder} gave {len(task_ids(ls, project))} of {expected} tasks")
        time.sleep(0.5)


def import_local_tasks(ls: LabelStudioServer, project: int, paths: list[Path]) -> None:
    """Tasks as JSON pointing at files under the document root (``/data/local-files/?d=...``)."""
    for folder in {p.parent for p in paths}:
        add_local_storage(ls, project, folder)
    tasks = [{"data": {"image": ls.local_files_url(p)}} for p in paths]
    answer = ls.api("POST", f"/api/projects/{project}/import", json=tasks)
    answer.raise_for_status()


def task_ids(ls: LabelStudioServer, project: int) -> list[int]:
    answer = ls.api("GET", "/api/tasks", params={"project": project, "page_size": 1000, "fields": "all"})
    answer.raise_for_status()
    return sorted(int(t["id"]) for t in answer.json()["tasks"])


def task_ids_all(ls: LabelStudioServer, project: int) -> list[int]:
    """Every task id of a project of any size (page by page)."""
    return sorted(int(t.id) for t in ls.client().tasks.list(project=project, include="id", page_size=1000))


def open_task(ls: LabelStudioServer, task: int) -> dict[str, Any]:
    """``GET /api/tasks/<id>``, what the labeling page asks; Label Studio calls ``/predict`` inside it."""
    answer = ls.api("GET", f"/api/tasks/{task}")
    answer.raise_for_status()
    return answer.json()


def sample_for(task: dict[str, Any], samples: list[Sample]) -> Sample:
    """The generated sample behind a task (uploads get a random prefix, so match on the file name's end)."""
    url = task["data"]["image"]
    for sample in samples:
        if url.endswith(sample.path.name):
            return sample
    raise AssertionError(f"task {task['id']} image {url!r} is none of the generated samples")
