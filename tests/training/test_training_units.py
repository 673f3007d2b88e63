"""Training parts without training: states, atomic files, registry, coalescing, dataset, routes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.support.shapes_project import LABEL_CONFIG, export_file, region, write_project
from tests.support.synthetic import Shape
from yolo_backend.config import Settings
from yolo_backend.core import state
from yolo_backend.core.durable import locked, read_json, write_json
from yolo_backend.core.registry import Registry, RegistryReader
from yolo_backend.core.split import in_holdout, split
from yolo_backend.core.state import RunRecord, RunState
from yolo_backend.core.status import StatusBook
from yolo_backend.formats.convert import parse_yolo_line
from yolo_backend.formats.ls_tasks import chosen_annotation
from yolo_backend.training import ProjectTrainer
from yolo_backend.training.coalesce import Coalescer
from yolo_backend.training.dataset import build_dataset

ROOT = Path(__file__).resolve().parents[2]


def settings_for(tmp_path: Path, **changes) -> Settings:
    values = dict(model_root=str(tmp_path / "root"), model_path="base.pt", model_dir=str(tmp_path / "state"),
                  local_files_document_root=str(tmp_path / "docroot"), train_min_images=10)
    values.update(changes)
    return Settings.from_env({}, **values)


class LockHolder:
    """Another process holding a file lock, as a running training worker holds run.lock."""

    def __init__(self, path: Path) -> None:
        code = ("import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.flock(f, fcntl.LOCK_EX); "
                "print('locked', flush=True); time.sleep(60)")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


# -- states and files ----------------------------------------------------------------------------
def test_run_states_move_and_round_trip_through_json() -> None:
    run = RunRecord("3")
    assert run.state == RunState.QUEUED and not run.state.finished
    state.start(run)
    assert run.state == RunState.RUNNING and run.started_at
    state.promote(run, "p3-v1", "nothing served yet")
    again = RunRecord.from_json(json.loads(json.dumps(run.to_json())))
    assert again == run and again.state.finished and again.version == "p3-v1"


def test_write_json_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "a" / "x.json"
    write_json(path, {"n": 1})
    write_json(path, {"n": 2})
    assert read_json(path) == {"n": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]
    assert read_json(tmp_path / "missing.json", "default") == "default"


# -- registry ------------------------------------------------------------------------------------
def test_registry_versions_are_monotonic_and_rollback_serves_an_earlier_one(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"first")
    registry = Registry(tmp_path, "3")
    assert registry.served() is None
    assert registry.publish(weights, ["a"], {"candidate": {"map50": 0.5}}, "r1") == "p3-v1"
    weights.write_bytes(b"second")
    assert registry.publish(weights, ["a"], {}, "r2") == "p3-v2"
    assert registry.served()["version"] == "p3-v2"
    assert registry.checkpoint(registry.served()).read_bytes() == b"second"
    registry.serve("p3-v1")
    assert registry.served()["version"] == "p3-v1"
    assert registry.checkpoint(registry.served()).read_bytes() == b"first"
    weights.write_bytes(b"third")
    assert registry.publish(weights, ["a"], {}, "r3") == "p3-v3"  # numbers never repeat after a rollback
    with pytest.raises(KeyError, match="p3-v9"):
        registry.serve("p3-v9")
    with pytest.raises(ValueError, match="project id"):
        Registry(tmp_path, "../etc")


def test_registry_reader_notices_a_version_published_by_another_process(tmp_path: Path) -> None:
    reader = RegistryReader(tmp_path)
    assert reader("4") == ()
    (tmp_path / "w.pt").write_bytes(b"w")
    code = ("import sys; from pathlib import Path; from yolo_backend.core.registry import Registry; "
            "Registry(Path(sys.argv[1]), '4').publish(Path(sys.argv[1]) / 'w.pt', ['a'], {}, 'r')")
    for expected in ("p4-v1", "p4-v2"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=ROOT)
        path, version = reader("4")[0].path, reader("4")[0].version
        assert version == expected and path.is_file() and path.parent.parent == tmp_path / "projects" / "4"


# -- coalescing ----------------------------------------------------------------------------------
def test_changes_count_up_to_train_every_n(tmp_path: Path) -> None:
    jobs: list[int] = []
    coalescer = Coalescer(tmp_path, "5")

    def submit() -> dict:
        jobs.append(1)
        return {"runner": "test", "n": len(jobs)}

    decisions = [coalescer.request(False, 3, submit, lambda job: True) for _ in range(3)]
    assert decisions == ["counted", "counted", "queued"] and len(jobs) == 1
    assert coalescer.read()["changes"] == 0
    assert coalescer.request(False, 0, submit, lambda job: True) == "counted"  # 0 = only the button


def test_triggers_during_a_live_run_fold_and_a_dead_run_is_replaced(tmp_path: Path) -> None:
    jobs: list[int] = []
    coalescer = Coalescer(tmp_path, "6")

    def submit() -> dict:
        jobs.append(1)
        return {"runner": "test"}

    assert coalescer.request(True, 10, submit, lambda job: True) == "queued"
    holder = LockHolder(coalescer.run_lock)  # the worker picked the run up
    coalescer.begin()
    try:
        assert [coalescer.request(True, 10, submit, lambda job: True) for _ in range(5)] == ["folded"] * 5
        assert len(jobs) == 1 and coalescer.read()["follow_up"]
    finally:
        holder.kill()  # kill -9: the kernel drops its lock
    assert coalescer.clear_dead_run(lambda job: True)
    assert not coalescer.read()["scheduled"]
    assert coalescer.request(True, 10, submit, lambda job: True) == "queued"
    assert len(jobs) == 2


def test_a_queued_job_counts_as_alive_until_its_runner_says_otherwise(tmp_path: Path) -> None:
    coalescer = Coalescer(tmp_path, "8")
    coalescer.request(True, 10, lambda: {"id": "j1"}, lambda job: True)
    assert coalescer.request(True, 10, lambda: {"id": "j2"}, lambda job: True) == "folded"
    assert coalescer.request(True, 10, lambda: {"id": "j3"}, lambda job: False) == "queued"
    assert coalescer.read()["job"] == {"id": "j3"}


def test_end_takes_the_follow_up_once(tmp_path: Path) -> None:
    coalescer = Coalescer(tmp_path, "9")
    coalescer.request(True, 10, lambda: {"id": "j"}, lambda job: True)
    with locked(coalescer.run_lock):  # as run_job holds it
        coalescer.begin()
        assert coalescer.request(True, 10, lambda: {"id": "x"}, lambda job: True) == "folded"
        assert coalescer.end() is True
        coalescer.begin()
        assert coalescer.end() is False
    assert not coalescer.read()["scheduled"]


# -- data ----------------------------------------------------------------------------------------
def test_chosen_annotation_skips_cancelled_prefers_ground_truth_then_newest() -> None:
    old = {"id": 1, "result": [], "created_at": "2025-01-01T00:00:00Z"}
    new = {"id": 2, "result": [], "created_at": "2025-02-01T00:00:00Z"}
    cancelled = {"id": 3, "result": [], "was_cancelled": True, "created_at": "2025-03-01T00:00:00Z"}
    truth = {"id": 4, "result": [], "ground_truth": True, "created_at": "2024-01-01T00:00:00Z"}
    assert chosen_annotation({"annotations": [old, new, cancelled]}) is new
    assert chosen_annotation({"annotations": [old, truth, new]}) is truth
    assert chosen_annotation({"annotations": [cancelled]}) is None
    assert chosen_annotation({}) is None


def test_holdout_is_stable_by_task_id_as_the_project_grows(tmp_path: Path) -> None:
    from yolo_backend.training.examples import Example

    examples = [Example(i, tmp_path, ()) for i in range(200)]
    train, holdout = split(examples, 0.2)
    assert 20 <= len(holdout) <= 60 and len(train) + len(holdout) == 200
    _, bigger = split([*examples, *(Example(i, tmp_path, ()) for i in range(200, 400))], 0.2)
    assert {e.task_id for e in holdout} <= {e.task_id for e in bigger}
    assert all(in_holdout(e.task_id, 0.2) for e in holdout)
    train, holdout = split(examples[:2], 0.01)
    assert len(train) == 1 and len(holdout) == 1  # tiny projects still get a holdout


def test_dataset_applies_exif_orientation_and_reads_polygons(tmp_path: Path) -> None:
    """A photo stored landscape with EXIF 6 shows portrait: boxes and image must be written portrait."""
    doc_root = tmp_path / "docroot"
    doc_root.mkdir()
    shown = Image.new("RGB", (200, 300), "white")  # displayed: 200 wide, 300 high
    stored = shown.transpose(Image.Transpose.ROTATE_90)  # 300 x 200 pixels on disk
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    stored.save(doc_root / "rotated.jpg", exif=exif)
    box = region(Shape(0, (20, 30, 120, 180)), 200, 300)
    polygon = {"from_name": "label", "to_name": "image", "type": "polygonlabels",
               "value": {"points": [[50, 50], [90, 50], [70, 90]], "polygonlabels": ["circle"]}}
    other = {**box, "from_name": "elsewhere"}
    task = {"id": 11, "data": {"image": "/data/local-files/?d=rotated.jpg"},
            "annotations": [{"id": 1, "result": [box, polygon, other]}]}
    settings = settings_for(tmp_path)
    dataset = build_dataset(tmp_path / "ds", [task, {"id": 12, "data": {"image": "x"}, "annotations": []}],
                            LABEL_CONFIG, settings)
    (example,) = dataset.train + dataset.val + dataset.holdout
    with Image.open(example.image) as img:
        assert img.size == (200, 300)
    assert dataset.labels == ["square", "circle"]
    # The polygon trains as its points; beside it, the box is written as its 4 corners (Ultralytics
    # rejects a file mixing box and segment rows); detect training reads both as the same boxes as before.
    assert example.lines == ("0 0.100000 0.100000 0.600000 0.100000 0.600000 0.600000 0.100000 0.600000",
                             "1 0.500000 0.500000 0.900000 0.500000 0.700000 0.900000")
    boxes = [parse_yolo_line(line) for line in example.lines]
    assert [b.class_id for b in boxes] == [0, 1]
    assert [(b.cx, b.cy, b.w, b.h) for b in boxes] == [pytest.approx((0.35, 0.35, 0.5, 0.5), abs=1e-9),
                                                       pytest.approx((0.7, 0.7, 0.4, 0.4), abs=1e-9)]
    assert dataset.holdout == [example]  # the floor holds it out, and the holdout never reaches Ultralytics
    assert not list(dataset.data_yaml.parent.rglob("task-11.*"))


# -- the trainer, routes and a real (tiny) run in a child process ----------------------------------
def test_too_little_data_is_a_not_started_status_not_an_error(tmp_path: Path) -> None:
    tasks = write_project(tmp_path / "docroot", 4)
    settings = settings_for(tmp_path)
    trainer = ProjectTrainer(settings, source=export_file(tmp_path / "export.json", tasks))
    answer = trainer.handle("START_TRAINING", "12")
    assert answer["status"] == "queued" and answer["runner"] == "local"
    assert trainer.status("12")["state"] in ("queued", "running")  # answered, not trained: the run goes on after it
    deadline = time.monotonic() + 120
    while trainer.status("12")["state"] != "idle" and time.monotonic() < deadline:
        time.sleep(0.5)
    last = trainer.status("12")["last_run"]
    assert last["state"] == "not_started", last
    assert last["reason"].startswith("need 6 more labeled images")
    assert trainer.handle("PROJECT_UPDATED", "12")["status"] == "ignored"
    assert trainer.handle("ANNOTATION_CREATED", "12") == {
        "status": "counted", "project": "12", "runner": "local", "changes": 1, "train_every_n": 10}


def test_routes_status_versions_rollback_and_gauges(tmp_path: Path) -> None:
    from yolo_backend.app import build_backend
    from yolo_backend.web.http_api import create_app

    settings = settings_for(tmp_path, admin_open=True)  # the admin routes (status, rollback, metrics) unlocked
    backend = build_backend(settings, start=False)
    client = create_app(backend).test_client()
    assert client.get("/training/status?project=3").get_json()["state"] == "idle"
    assert client.get("/training/status").status_code == 400
    assert client.get("/training/status?project=../x").status_code == 400
    (tmp_path / "w.pt").write_bytes(b"w")
    registry = Registry(settings.model_dir_path, "3")
    registry.publish(tmp_path / "w.pt", ["a"], {"candidate": {"map50": 0.9, "map50_95": 0.7}}, "r1")
    registry.publish(tmp_path / "w.pt", ["a"], {"candidate": {"map50": 0.8, "map50_95": 0.6}}, "r2")
    listed = client.get("/versions?project=3").get_json()
    assert listed["versions"] == ["p3-v1", "p3-v2"] and listed["served"] == "p3-v2"
    assert listed["details"][0]["metrics"]["candidate"]["map50"] == 0.9
    assert "versions" in client.get("/versions").get_json()
    assert client.post("/training/rollback", json={"project": 3, "version": "p3-v1"}).get_json()["served"] == "p3-v1"
    assert backend.trainer.lookup("3")[0].version == "p3-v1"
    refused = client.post("/training/rollback", json={"project": 3, "version": "p3-v7"})
    assert refused.status_code == 400 and "p3-v7" in refused.get_json()["message"]
    StatusBook(settings.model_dir_path, "3").save(state.start(RunRecord("3", progress={"epoch": 2, "epochs": 5})))
    text = client.get("/metrics").data.decode()
    assert 'yolo_backend_training_served_version{project="3"} 1.0' in text
    assert 'yolo_backend_training_run_epoch{project="3"} 2.0' in text
    assert 'yolo_backend_training_state{project="3",state="running"} 1.0' in text
