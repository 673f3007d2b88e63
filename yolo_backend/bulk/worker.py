"""Where chunks run: ``python -m yolo_backend.bulk.worker`` (the service's one background process) or
``rq worker <BULK_QUEUE>`` calling ``rq_chunk``.

Both load the served model once per process (the project's promoted version, from MODEL_DIR's
registry, as the web workers do) and write through Label Studio's API with LABEL_STUDIO_API_KEY.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..config import Settings
from ..core.registry import RegistryReader
from ..labelstudio import ls_client
from ..logs import configure
from ..serving.backend import YOLOBackend
from ..serving.model_store import ModelStore
from .chunks import ChunkResult, InProcessEngine, Storer, owner_id, run_chunk
from .ledger import Ledger

log = logging.getLogger(__name__)

PROCESS_LOCK = "bulk-worker.lock"  # held by the service's background process for its whole life
NICENESS = 10  # under the web workers, as training is: pages and /predict stay quick while a job runs

_engines: dict[str, tuple[InProcessEngine, Any]] = {}  # per settings: one model and one client per process


def _engine(settings: Settings) -> tuple[InProcessEngine, Any]:
    key = json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)
    if key not in _engines:
        if not settings.label_studio_url or not settings.label_studio_api_key:
            raise RuntimeError("a bulk job writes predictions through Label Studio's API: set LABEL_STUDIO_URL and "
                               "LABEL_STUDIO_API_KEY where it runs")
        store = ModelStore(settings)
        store.use_project_models(RegistryReader(settings.model_dir_path))
        backend = YOLOBackend(settings, store=store)
        store.start(background=False)
        client = ls_client.connect(settings.label_studio_url, settings.label_studio_api_key)
        _engines[key] = (InProcessEngine(backend), client)
    return _engines[key]


def rq_chunk(job_id: str, chunk: int) -> dict[str, Any]:
    """One chunk under ``rq worker``: settings from the worker's own environment (MODEL_DIR shared)."""
    settings = Settings.from_env()
    if not logging.getLogger().handlers:
        configure(settings.log_level)
    engine, client = _engine(settings)
    result = run_chunk(Ledger(settings.model_dir_path), job_id, chunk, engine, client, settings.bulk_lease_seconds)
    return dataclasses.asdict(result)


def drain(settings: Settings) -> list[ChunkResult]:
    """Run every chunk no live attempt holds, oldest job first, until none is left; this process's results."""
    ledger = Ledger(settings.model_dir_path)
    owner, results, storer = owner_id(), [], Storer()
    try:
        while True:
            storer.wait()  # the last chunk stored before looking for more: it is not "open" any longer
            waiting = ledger.open_chunks()
            if not waiting:
                return results
            engine, client = _engine(settings)
            for job_id, chunk in waiting:
                try:
                    results.append(run_chunk(ledger, job_id, chunk, engine, client, settings.bulk_lease_seconds,
                                             owner, storer))
                except Exception as exc:  # Label Studio away, a refused key: the chunk keeps its lease, retried later
                    log.error("bulk job %s chunk %d failed, retried after BULK_LEASE_SECONDS: %s", job_id, chunk, exc)
                    results.append(ChunkResult(stopped=f"error: {exc}"))
            if results and all(r.stopped.startswith("error") for r in results[-len(waiting):]):
                return results  # every chunk failed: stop here, the leases hold the retries off
    finally:
        storer.close()


def main() -> int:
    """The service's background process: settings on stdin (the API key stays out of argv), one at a time."""
    settings = Settings(**json.loads(sys.stdin.read()))
    configure(settings.log_level)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    with open(lock_path(settings.model_dir_path), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another one drains: it picks up the new chunks too
        if settings.train_threads > 0:
            import torch

            torch.set_num_threads(settings.train_threads)
        results = drain(settings)
    log.info("bulk worker: %d chunks run, %d predictions stored", len(results), sum(r.stored for r in results))
    return 0


def lock_path(model_dir: Path) -> Path:
    return model_dir / PROCESS_LOCK


if __name__ == "__main__":
    raise SystemExit(main())
