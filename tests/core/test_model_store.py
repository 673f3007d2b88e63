"""Loading once, serving per project, and forgetting replaced versions."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.support.standin import ColorBlobDetector
from yolo_backend.config import Settings
from yolo_backend.core.registry import ProjectModel
from yolo_backend.errors import ModelPathRefused
from yolo_backend.serving.model_store import ModelStore, safe_model_path


def project_model(path: Path, version: str, control: str | None = None, **thresholds: float) -> ProjectModel:
    return ProjectModel(path, version, control, (), dict(thresholds))


def make_store(tmp_path: Path, delay: float = 0.0) -> tuple[ModelStore, list[Path]]:
    settings = Settings.from_env({}, model_root=str(tmp_path / "root"), model_dir=str(tmp_path / "state"))
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "yolov5nu.pt").write_bytes(b"base")
    loads: list[Path] = []

    def loader(path: Path, **_options: object) -> ColorBlobDetector:
        loads.append(path)
        time.sleep(delay if path.name != "yolov5nu.pt" else 0)
        return ColorBlobDetector()

    store = ModelStore(settings, loader=loader)  # type: ignore[arg-type]
    store.start(background=False)
    return store, loads


def test_each_checkpoint_loads_once_however_many_threads_ask(tmp_path: Path) -> None:
    store, loads = make_store(tmp_path, delay=0.2)
    trained = tmp_path / "state" / "p1-v1.pt"
    trained.parent.mkdir(parents=True)
    trained.write_bytes(b"v1")
    store.use_project_models(lambda project: (project_model(trained, "p1-v1"),) if project == "1" else ())
    threads = [threading.Thread(target=store.for_project, args=("1",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads.count(trained.resolve()) == 1
    assert store.for_project("1").version == "p1-v1"
    assert store.for_project("2").version.startswith("yolov5nu-")


def test_a_new_version_replaces_the_old_one_in_memory(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    served = {"path": tmp_path / "state" / "v1.pt", "version": "p1-v1"}
    served["path"].parent.mkdir(parents=True)
    for name in ("v1.pt", "v2.pt"):
        (tmp_path / "state" / name).write_bytes(name.encode())
    store.use_project_models(lambda project: (project_model(served["path"], served["version"]),))
    first = store.for_project("1")
    served.update(path=tmp_path / "state" / "v2.pt", version="p1-v2")
    second = store.for_project("1")
    assert (first.version, second.version) == ("p1-v1", "p1-v2")
    assert first.detector is not second.detector
    loaded = set(store._detectors)
    assert (tmp_path / "state" / "v1.pt").resolve() not in loaded, "the replaced version is unloaded"
    assert store.base_path in loaded, "the base model always stays"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x.pt", "a/../../x.pt", ""])
def test_model_paths_stay_inside_the_root(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ModelPathRefused):
        safe_model_path(tmp_path, bad)


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere.pt").write_bytes(b"x")
    (tmp_path / "root" / "link.pt").symlink_to(tmp_path / "elsewhere.pt")
    with pytest.raises(ModelPathRefused):
        safe_model_path(tmp_path / "root", "link.pt")


def test_bad_model_path_setting_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MODEL_PATH"):
        ModelStore(Settings.from_env({}, model_root=str(tmp_path), model_path="../outside.pt"))
