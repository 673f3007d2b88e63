"""Assembles the service from settings: logging, model store, backend, HTTP app."""

from __future__ import annotations

from flask import Flask

from .config import Settings
from .http_api import create_app
from .logs import configure
from .model_store import ModelStore
from .training import ProjectTrainer, build_trainer
from .training.gauges import TrainingCollector


def build_backend(settings: Settings, store: ModelStore | None = None, start: bool = True,
                  trainer: ProjectTrainer | None = None):
    """The backend with its model store and trainer; the base model starts loading in the background."""
    from model import YOLOBackend  # the top-level model.py, as Label Studio users expect it

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
    return create_app(build_backend(settings))
