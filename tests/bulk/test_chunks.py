"""A chunk keeps its lease while a long batch is predicted (a video being tracked), and loses it only by dying."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from yolo_backend.bulk.chunks import run_chunk
from yolo_backend.bulk.ledger import Ledger


class SlowEngine:
    """Takes longer than three leases over the batch, then finds every task unreadable (so nothing is stored)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    def version(self, project: str, label_config: str) -> str:
        return "v1"

    def predict(self, tasks: list[dict[str, Any]], project: str, label_config: str,
                failed: dict[int, str]) -> list[dict[str, Any]]:
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.seconds)
        raise ValueError("unreadable")


def test_a_long_batch_keeps_the_lease_so_no_second_attempt_starts(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    job = ledger.create("3", "v1", "<View/>", [{"id": i, "data": {}} for i in (1, 2)], chunk_size=4,
                        origin="retrieve")
    assert job is not None
    taken: list[object] = []

    def another_worker() -> None:  # comes after the lease would have run out twice
        time.sleep(0.8)
        taken.append(ledger.claim_chunk(job.id, 0, "other", lease_s=60))

    thread = threading.Thread(target=another_worker)
    thread.start()
    result = run_chunk(ledger, job.id, 0, SlowEngine(1.5), client=None, lease_s=0.3, owner="first")
    thread.join()
    assert taken == [None], "the first attempt still held the chunk"
    assert (result.stored, result.failed, result.stopped) == (0, 2, "")
    assert ledger.progress(job.id)["state"] == "done"


def test_a_background_process_that_fails_is_not_restarted_in_a_tight_loop(tmp_path: Path) -> None:
    """No Label Studio to store into: the real ``bulk.worker`` process exits 1; the next start waits (2 s, 4 s...)."""
    from yolo_backend.bulk.jobs import LocalChunks
    from yolo_backend.config import Settings

    settings = Settings.from_env({}, model_dir=str(tmp_path / "state"), label_studio_url="")
    ledger = Ledger(settings.model_dir_path)
    assert ledger.create("3", "v1", "<View/>", [{"id": 1, "data": {}}], chunk_size=4, origin="retrieve")
    chunks = LocalChunks(settings)
    chunks.sweep(ledger)
    first = chunks._child
    assert first is not None and first.wait(timeout=120) == 1
    chunks.sweep(ledger)  # sees the failure: no new process now
    assert chunks._child is None and chunks._not_before > time.monotonic() + 1
