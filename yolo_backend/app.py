"""Assembles the service from settings: logging, model store, backend, HTTP app."""

from __future__ import annotations

from flask import Flask

from .config import Settings
from .http_api import create_app
from .logs import configure
from .model_store import ModelStore


def build_backend(settings: Settings, store: ModelStore | None = None, start: bool = True):
    """The backend with its model store; the base model starts loading in the background."""
    from model import YOLOBackend  # the top-level model.py, as Label Studio users expect it

    store = store or ModelStore(settings)
    backend = YOLOBackend(settings, store=store)
    if start:
        store.start(background=True)
    return backend


def build_app(settings: Settings) -> Flask:
    configure(settings.log_level)
    return create_app(build_backend(settings))
