"""The real Flask app on a real loopback socket, in this process, with the stand-in detector.

For the fuzz and bad-input tests: fast (no Ultralytics), yet every request goes through
HTTP parsing, the routes, media fetching, conversion and the error handler. Training
runs are recorded by ``RecordingRunner`` instead of starting processes, so a fuzzer
that finds a valid START_TRAINING body does not start real training on 2 cores.

Webhook triggers are admitted only for projects Label Studio knows: unless the test names
its own ``label_studio_url``, a ``StandinLabelStudio`` answers the lookup, knowing every id
(``known_projects=None``) or only the ids given.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from model import YOLOBackend
from tests.support.standin import ColorBlobDetector, standin_store
from tests.support.standin_label_studio import StandinLabelStudio
from yolo_backend.config import Settings
from yolo_backend.training import ProjectTrainer
from yolo_backend.web.http_api import create_app


class RecordingRunner:
    """A ``Runner`` that records submissions; ``alive`` says yes so runs stay "scheduled"."""

    name = "recording"

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []

    def submit(self, project: str, run_id: str) -> dict[str, Any]:
        self.submitted.append((project, run_id))
        return {"runner": self.name, "run_id": run_id}

    def alive(self, job: dict[str, Any]) -> bool:
        return True


class LiveApp:
    """``LiveApp(tmp_path, docs_root, **settings)``; ``.url``, ``.backend``, ``.runner``, ``.label_studio``,
    ``.close()``."""

    def __init__(self, workdir: Path, docs_root: Path | None = None, real_runner: bool = False,
                 known_projects: set[int] | None = None, **overrides: Any) -> None:
        values: dict[str, Any] = {"model_root": str(workdir / "models"), "model_dir": str(workdir / "state"),
                                  "local_files_document_root": str(docs_root or ""), "http_timeout": 2.0}
        self.label_studio: StandinLabelStudio | None = None
        if "label_studio_url" not in overrides:
            self.label_studio = StandinLabelStudio({p: {"label_config": "<View/>", "tasks": []}
                                                    for p in known_projects or ()},
                                                   known_all=known_projects is None)
            values.update(label_studio_url=self.label_studio.url, label_studio_api_key=self.label_studio.token)
        values.update(overrides)
        self.settings = Settings.from_env({}, **values)
        store, self.detector = standin_store(self.settings, ColorBlobDetector())
        self.runner = RecordingRunner()
        trainer = ProjectTrainer(self.settings, runner=None if real_runner else self.runner)  # type: ignore[arg-type]
        store.use_project_models(trainer.lookup)  # as app.build_backend wires it
        self.backend = YOLOBackend(self.settings, store=store, trainer=trainer)
        store.start(background=False)
        self.app = create_app(self.backend)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.backend.close()
        if self.label_studio is not None:
            self.label_studio.close()


def assert_healthy(app: LiveApp) -> None:
    """After every bad-input case: the server still answers /health as UP."""
    import requests

    answer = requests.get(f"{app.url}/health", timeout=60)  # a give-up limit: a busy machine answers slowly
    assert answer.status_code == 200 and answer.json()["status"] == "UP", "the server must stay healthy"
