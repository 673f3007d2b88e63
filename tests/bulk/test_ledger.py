"""The ledger's moves on a real SQLite file: no task is handed to two writers, a dead attempt's chunk comes back."""

from __future__ import annotations

import time
from pathlib import Path

from yolo_backend.bulk.ledger import Ledger


def tasks(*ids: int) -> list[dict]:
    return [{"id": i, "data": {"image": f"/data/local-files/?d={i}.png"}} for i in ids]


def test_a_job_holds_its_tasks_and_a_second_selection_queues_only_the_rest(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    first = ledger.create("3", "v1", "<View/>", tasks(1, 2, 3, 4, 5), chunk_size=2, origin="retrieve")
    assert first is not None and first.total == 5
    assert ledger.held("3", [1, 5, 9]) == {1: "queued", 5: "queued"}
    assert ledger.held("4", [1]) == {}  # another project's task 1 is another task
    second = ledger.create("3", "v1", "<View/>", tasks(4, 5, 6, 6), chunk_size=2, origin="retrieve")
    assert second is not None and second.total == 1  # 4 and 5 are held; 6 once
    assert ledger.create("3", "v1", "<View/>", tasks(1, 6), chunk_size=2, origin="retrieve") is None
    assert ledger.open_chunks() == [(first.id, 0), (first.id, 1), (first.id, 2), (second.id, 0)]


def test_an_opened_task_leaves_its_job_unless_a_chunk_holds_it(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    job = ledger.create("3", "v1", "<View/>", tasks(1, 2, 3), chunk_size=3, origin="retrieve")
    assert job is not None
    claimed = ledger.claim_chunk(job.id, 0, "a", lease_s=60)
    assert claimed is not None and [t["id"] for t in claimed.todo] == [1, 2, 3]
    assert ledger.take_over("3", 2) == "queued"  # opened before the chunk reached it: /predict answers it
    assert ledger.claim_tasks(job.id, [1, 2, 3], "a", "v1") == [1, 3]
    assert ledger.take_over("3", 1) == "claimed"  # the chunk stores it: /predict must not
    assert ledger.held("3", [1, 2, 3]) == {1: "claimed", 3: "claimed"}
    ledger.mark(job.id, {1: ("stored", None), 3: ("failed", "media: not found")})
    ledger.finish_chunk(job.id, 0, "a")
    progress = ledger.progress(job.id)
    assert (progress["state"], progress["stored"], progress["opened"], progress["failed"], progress["left"]) == \
        ("done", 1, 1, 1, 0)
    assert progress["failures"] == [{"task": 3, "reason": "media: not found"}]
    assert ledger.held("3", [1, 2, 3]) == {} and ledger.task_state("3", 1) == "stored"


def test_a_live_lease_keeps_others_out_and_a_lapsed_one_hands_back_the_unsure_tasks(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    job = ledger.create("3", "v1", "<View/>", tasks(1, 2, 3), chunk_size=3, origin="retrieve")
    assert job is not None
    assert ledger.claim_chunk(job.id, 0, "dead", lease_s=0.2) is not None
    assert ledger.claim_tasks(job.id, [1, 2], "dead", "v1") == [1, 2]
    ledger.mark(job.id, {1: ("stored", None)})
    assert ledger.claim_chunk(job.id, 0, "b", lease_s=60) is None  # leased
    assert ledger.open_chunks() == [] and ledger.stalled_chunks() == []
    deadline = time.time() + 5
    while not ledger.stalled_chunks() and time.time() < deadline:  # the lease runs out (0.2 s)
        time.sleep(0.05)
    assert ledger.stalled_chunks() == [(job.id, 0, 1)]
    again = ledger.claim_chunk(job.id, 0, "b", lease_s=60)
    assert again is not None
    assert [t["id"] for t in again.todo] == [3]  # 1 is stored: skipped
    assert [(t["id"], version) for t, version in again.unsure] == [(2, "v1")]  # claimed, never marked: ask LS
    assert not ledger.renew(job.id, 0, "dead", 60)  # the dead attempt, if it was only slow, stores nothing
    assert ledger.renew(job.id, 0, "b", 60)
    assert ledger.claim_tasks(job.id, [2, 3], "b", "v1") == [2, 3]  # not in Label Studio: the new attempt's now


def test_cancel_releases_queued_tasks_and_stops_the_chunk_before_it_stores(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    job = ledger.create("3", "v1", "<View/>", tasks(1, 2, 3, 4), chunk_size=2, origin="prelabel")
    assert job is not None
    assert ledger.claim_chunk(job.id, 0, "a", lease_s=60) is not None
    assert ledger.cancel(job.id)
    assert not ledger.renew(job.id, 0, "a", 60)
    assert ledger.held("3", [1, 2, 3, 4]) == {}  # opening any of them predicts as usual
    assert ledger.claim_chunk(job.id, 1, "a", lease_s=60) is None
    assert ledger.progress(job.id)["state"] == "cancelled" and ledger.open_chunks() == []
