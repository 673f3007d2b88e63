"""Assembles the service from settings: logging, model store, backend, trainer, HTTP app.

The composition root: the one module that wires serving, web and training together (``cli`` uses it too).
"""

from __future__ import annotations

import logging

from flask import Flask

from .assist import Assistant
from .bulk import BulkJobs
from .config import Settings
from .logs import configure
from .serving.backend import YOLOBackend
from .serving.model_store import ModelStore
from .training import ProjectTrainer, build_trainer
from .training.gauges import TrainingCollector
from .web.http_api import create_app


def build_backend(settings: Settings, store: ModelStore | None = None, start: bool = True,
                  trainer: ProjectTrainer | None = None) -> YOLOBackend:
    """The backend with its model store and trainer; the base model starts loading in the background."""
    store = store or ModelStore(settings)
    trainer = trainer or build_trainer(settings)
    store.use_project_models(trainer.lookup)  # serve each project's promoted version, seen by every worker
    backend = YOLOBackend(settings, store=store, trainer=trainer)
    backend.metrics.registry.register(TrainingCollector(settings.model_dir_path))
    if start:
        store.start(background=True)
    return backend


def build_app(settings: Settings) -> Flask:
    configure(settings.log_level)
    if settings.webhook_secret and not settings.basic_auth:
        # Label Studio's "Start training" button sends only the model's basic auth, never custom headers.
        logging.getLogger(__name__).warning(
            "WEBHOOK_SECRET is set without BASIC_AUTH_USER/BASIC_AUTH_PASS: annotation events carrying the "
            "X-Webhook-Secret header still count, but Label Studio's Start training button will be refused (401); "
            "set basic auth on the backend and in Label Studio's model connection to keep the button")
    backend = build_backend(settings)
    assistant = Assistant(backend)
    assistant.start()  # ASSIST_MODEL, when set: fetched and loaded in the background
    return create_app(backend, BulkJobs(settings), assistant)


def in_process_backend(url: str, api_key: str, model_root: str | None, model_path: str | None) -> YOLOBackend:
    """The backend the server would build from the environment, its model loaded before returning."""
    overrides = {"label_studio_url": url, "label_studio_api_key": api_key}
    overrides.update({k: v for k, v in (("model_root", model_root), ("model_path", model_path)) if v})
    backend = build_backend(Settings.from_env(**overrides), start=False)
    backend.store.start(background=False)
    if backend.store.state.value != "ready":
        raise ValueError(f"the model did not load: {backend.store.message}")
    return backend
