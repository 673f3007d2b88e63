"""Retention and the training-image cache, on real files: what a project keeps on disk run after run.

Versions are published through ``Registry.publish`` from small stand-in checkpoint files
(retention never opens them as models); export folders are plain folders named as the
runtime names them (``<content key>-<engine>-<imgsz>``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.shapes_project import LABEL_CONFIG, write_project
from yolo_backend.config import Settings
from yolo_backend.core.registry import Registry
from yolo_backend.serving import runtime
from yolo_backend.training.dataset import build_dataset
from yolo_backend.training.retention import prune, training_images

PROJECT = "7"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


def publish(registry: Registry, tmp_path: Path, count: int, with_key: bool = True) -> list[str]:
    """``count`` versions with distinct weights; the odd ones carry ``export_key`` (as new entries do)."""
    names = []
    for i in range(count):
        candidate = tmp_path / f"candidate-{i}.pt"
        candidate.write_bytes(f"weights of run {i}".encode() * 500)
        details = {"export_key": runtime.content_key(candidate)} if with_key and i % 2 else {}
        names.append(registry.publish(candidate, ["square", "circle"], {"candidate": {"map50_95": i / 10}},
                                      f"run-{i}", **details))
    return names


def exports_of(registry: Registry, runtime_root: Path, version: str) -> list[Path]:
    """Two engines' export folders for ``version``'s checkpoint, each with a file inside."""
    entry = next(v for v in registry.load()["versions"] if v["version"] == version)
    key = runtime.content_key(registry.checkpoint(entry))
    folders = [runtime_root / f"{key}-onnx-640", runtime_root / f"{key}-openvino-320"]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"graph" * 200)
        folder.with_name(f"{folder.name}.lock").touch()  # as runtime.prepare leaves one beside each
    return folders


def entries(registry: Registry) -> dict[str, dict]:
    return {v["version"]: v for v in registry.load()["versions"]}


def test_prune_keeps_the_served_and_newest_versions_and_deletes_the_rest(tmp_path: Path, model_dir: Path) -> None:
    registry = Registry(model_dir, PROJECT)
    runtime_root = model_dir / "runtime"
    names = publish(registry, tmp_path, 6)  # p7-v1 .. p7-v6; v6 serves
    folders = {name: exports_of(registry, runtime_root, name) for name in names}
    legacy = runtime_root / "p7-v1-onnx-640"  # an export made when folders were named by version
    legacy.mkdir()
    paths = {name: registry.checkpoint(entries(registry)[name]) for name in names}
    keys = {name: runtime.content_key(path) for name, path in paths.items()}

    report = prune(model_dir, PROJECT, 3, runtime_root, set())

    assert report["kept"] == ["p7-v4", "p7-v5", "p7-v6"]
    assert report["removed"] == ["p7-v1", "p7-v2", "p7-v3"]
    after = entries(registry)
    for name in names[:3]:
        assert not paths[name].exists()
        assert not any(folder.exists() for folder in folders[name])
        assert not any(folder.with_name(f"{folder.name}.lock").exists() for folder in folders[name])
        assert after[name]["removed"] > 0
        assert after[name]["metrics"]["candidate"]["map50_95"] == pytest.approx(int(name[-1]) / 10 - 0.1)
        assert after[name]["export_key"] == keys[name]  # recorded, so a later prune still finds its exports
    for name in names[3:]:
        assert paths[name].is_file() and all(folder.is_dir() for folder in folders[name])
        assert "removed" not in after[name]
    assert not legacy.exists()
    assert registry.load()["served"] == "p7-v6"
    freed = 3 * (len(b"weights of run 0") * 500 + 2 * 1000)
    assert report["bytes_freed"] == freed
    assert sorted(report["exports"]) == sorted([f.name for n in names[:3] for f in folders[n]] + [legacy.name])


def test_served_version_is_never_removed_even_when_old(tmp_path: Path, model_dir: Path) -> None:
    registry = Registry(model_dir, PROJECT)
    runtime_root = model_dir / "runtime"
    names = publish(registry, tmp_path, 5)
    registry.serve("p7-v1")  # a rollback: the oldest version serves
    served_exports = exports_of(registry, runtime_root, "p7-v1")

    report = prune(model_dir, PROJECT, 2, runtime_root, set())

    assert report["kept"] == ["p7-v1", "p7-v4", "p7-v5"]
    assert report["removed"] == ["p7-v2", "p7-v3"]
    assert registry.checkpoint(registry.served()).is_file() and registry.served()["version"] == "p7-v1"
    assert all(folder.is_dir() for folder in served_exports)
    assert registry.mark_removed(["p7-v1"]) == []  # asked directly: still never the served one
    assert "removed" not in entries(registry)["p7-v1"]

    only_served = prune(model_dir, PROJECT, 0, runtime_root, set())
    assert only_served["kept"] == ["p7-v1"] and only_served["removed"] == ["p7-v4", "p7-v5"]
    assert [n for n, e in entries(registry).items() if not e.get("removed")] == ["p7-v1"]
    assert len(entries(registry)) == len(names)  # every version stays listed, with its scores


def test_prune_twice_changes_nothing_the_second_time(tmp_path: Path, model_dir: Path) -> None:
    registry = Registry(model_dir, PROJECT)
    publish(registry, tmp_path, 4, with_key=False)  # older entries: no export_key, computed from the checkpoint
    prune(model_dir, PROJECT, 1, model_dir / "runtime", set())
    before = registry.path.stat()

    again = prune(model_dir, PROJECT, 1, model_dir / "runtime", set())

    assert again["removed"] == [] and again["bytes_freed"] == 0
    assert registry.path.stat().st_ino == before.st_ino  # the registry was not rewritten: no reload anywhere
    assert all(e.get("export_key") for e in entries(registry).values() if e.get("removed"))


def test_rollback_to_a_removed_version_says_retention_removed_it(tmp_path: Path, model_dir: Path) -> None:
    registry = Registry(model_dir, PROJECT)
    publish(registry, tmp_path, 3)
    prune(model_dir, PROJECT, 1, model_dir / "runtime", set())

    with pytest.raises(FileNotFoundError) as caught:
        registry.serve("p7-v1")
    assert "KEEP_VERSIONS" in str(caught.value) and "retention" in str(caught.value)
    assert registry.load()["served"] == "p7-v3"


def test_prune_deletes_training_images_the_last_run_did_not_use(tmp_path: Path, model_dir: Path) -> None:
    images = training_images(model_dir, PROJECT)
    images.mkdir(parents=True)
    used = {images / f"used-{i}.jpg" for i in range(3)}
    unused = {images / f"old-{i}.jpg" for i in range(4)}
    for path in used | unused:
        path.write_bytes(b"jpeg" * 100)
    other_project = training_images(model_dir, "8") / "theirs.jpg"
    other_project.parent.mkdir(parents=True)
    other_project.write_bytes(b"jpeg")

    report = prune(model_dir, PROJECT, 3, model_dir / "runtime", used)

    assert report["images"] == 4 and report["bytes_freed"] == 4 * 400
    assert {p for p in images.iterdir()} == used
    assert other_project.is_file()


def test_training_images_are_cached_by_content_not_mtime(tmp_path: Path, model_dir: Path) -> None:
    doc_root = tmp_path / "docroot"
    tasks = write_project(doc_root, 6, size=(64, 64), max_shapes=1)
    settings = Settings.from_env({}, model_dir=str(model_dir), local_files_document_root=str(doc_root),
                                 train_min_holdout=1)

    first = build_dataset(tmp_path / "run-1", tasks, LABEL_CONFIG, settings, project=PROJECT)
    for source in (doc_root / "shapes").iterdir():  # as the download cache does on every read
        os.utime(source, (source.stat().st_atime + 60, source.stat().st_mtime + 60))
    second = build_dataset(tmp_path / "run-2", tasks, LABEL_CONFIG, settings, project=PROJECT)

    cached = sorted(training_images(model_dir, PROJECT).iterdir())
    assert len(cached) == len(tasks)
    used = {e.image for d in (first, second) for e in [*d.train, *d.val, *d.holdout]}
    assert used == set(cached)
    assert not (model_dir / "training-images").exists()  # per project, not shared
