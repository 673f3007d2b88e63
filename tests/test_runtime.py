"""The exported CPU engines answer as torch does, are cached per version, and fall back to torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ultralytics import YOLO

from yolo_backend import random_model, runtime
from yolo_backend.config import Settings
from yolo_backend.convert import Detection
from yolo_backend.detector import Detector
from yolo_backend.model_store import ModelStore, checkpoint_version
from yolo_backend.parity import mismatches, same_detections
from yolo_backend.synthetic import draw_sample

IMGSZ = 256  # small: an export and a few predictions take seconds on 2 cores
CONF = 0.25


def _bgr(seed: int, size: tuple[int, int]) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(draw_sample(seed, size=size)[0])[:, :, ::-1])


# Landscape, portrait and square images: each letterboxes to a different rectangle.
IMAGES = [_bgr(seed, size) for seed, size in enumerate([(320, 240), (240, 320), (288, 288), (400, 224)])]


@pytest.fixture(scope="module")
def lively(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_model.build(tmp_path_factory.mktemp("lively") / "lively.pt")


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODEL_DIR shared by the tests here, so each engine exports once for the module."""
    return tmp_path_factory.mktemp("state")


def _load(checkpoint: Path, engine: str, state: Path) -> Detector:
    """As the model store loads it: cache under MODEL_DIR/runtime, keyed by the checkpoint's version."""
    return Detector.load(checkpoint, runtime=engine, cache_root=state / "runtime",
                         version=checkpoint_version(checkpoint), imgsz=IMGSZ)


@pytest.fixture(scope="module")
def reference(lively: Path) -> list[list[Detection]]:
    return Detector.load(lively, imgsz=IMGSZ).detect(IMAGES, conf=CONF)


def test_the_random_model_finds_things(reference: list[list[Detection]]) -> None:
    """Otherwise every parity check below would compare two empty lists."""
    assert sum(1 for found in reference if found) >= 3 and sum(map(len, reference)) >= 5
    assert len({d.class_id for found in reference for d in found}) > 1


@pytest.mark.parametrize("engine", ["onnx", "openvino"])
def test_exported_engine_matches_torch(engine: str, lively: Path, reference, state: Path) -> None:
    if not runtime.available(engine):
        pytest.skip(f"{engine} is not installed")
    fast = _load(lively, engine, state)
    assert fast.runtime == engine
    assert fast.names == Detector(YOLO(str(lively))).names and len(fast.names) == 80
    found = fast.detect(IMAGES, conf=CONF)
    assert same_detections(reference, found, CONF) == []
    folder = runtime.export_dir(state / "runtime", checkpoint_version(lively), engine, IMGSZ)
    assert (folder / runtime.VERIFIED_MARK).is_file() or any(folder.glob(f"*/{runtime.VERIFIED_MARK}"))


def test_export_is_made_once_per_version(lively: Path, state: Path) -> None:
    _load(lively, "onnx", state)
    folder = runtime.export_dir(state / "runtime", checkpoint_version(lively), "onnx", IMGSZ)
    exported = runtime.exported_file(folder, "onnx")
    assert exported is not None
    stamp = exported.stat().st_mtime_ns
    again = _load(lively, "onnx", state)
    assert again.runtime == "onnx" and exported.stat().st_mtime_ns == stamp
    assert runtime.export_dir(state, "v2", "onnx", IMGSZ) != runtime.export_dir(state, "v1", "onnx", IMGSZ)


def test_a_stale_export_that_answers_differently_falls_back_to_torch(lively: Path, tmp_path: Path) -> None:
    """Another checkpoint's graph under this version: verification catches it and torch serves."""
    other = random_model.build(tmp_path / "other.pt", seed=7)
    Detector.load(other, runtime="onnx", cache_root=tmp_path, version="same", imgsz=IMGSZ)
    folder = runtime.export_dir(tmp_path, "same", "onnx", IMGSZ)
    (folder / runtime.VERIFIED_MARK).unlink()  # verified for `other`, not for `lively`
    served = Detector.load(lively, runtime="onnx", cache_root=tmp_path, version="same", imgsz=IMGSZ)
    assert served.runtime == "torch"


def test_a_corrupt_export_falls_back_to_torch(lively: Path, reference, tmp_path: Path) -> None:
    folder = runtime.export_dir(tmp_path, "v1", "onnx", IMGSZ)
    folder.mkdir(parents=True)
    (folder / "lively.onnx").write_bytes(b"not an onnx graph")
    served = Detector.load(lively, runtime="onnx", cache_root=tmp_path, version="v1", imgsz=IMGSZ)
    assert served.runtime == "torch"
    assert same_detections(reference, served.detect(IMAGES, conf=CONF), CONF) == []


def test_candidates_keep_torch_last_and_alone_on_gpus() -> None:
    assert runtime.candidates("torch", "cpu") == ("torch",)
    assert runtime.candidates("auto", "cuda:0") == ("torch",)
    assert runtime.candidates("auto", "cpu")[-1] == "torch"
    assert runtime.candidates("onnx", "cpu") == ("onnx", "torch")
    with pytest.raises(ValueError, match="RUNTIME"):
        runtime.candidates("tensorrt", "cpu")


def test_runtime_setting_is_checked_at_start() -> None:
    assert Settings.from_env({}).runtime == "auto"
    with pytest.raises(ValueError, match="RUNTIME"):
        Settings.from_env({"RUNTIME": "fast"})


def test_model_store_serves_the_export_cached_under_model_dir(lively: Path, state: Path) -> None:
    settings = Settings.from_env({}, model_root=str(lively.parent), model_path=lively.name,
                                 model_dir=str(state), runtime="onnx", imgsz=IMGSZ)
    store = ModelStore(settings)
    store.start(background=False)
    served = store.base()
    assert served.detector is not None and served.detector.runtime == "onnx"
    assert runtime.export_dir(settings.model_dir_path / "runtime", served.version, "onnx", IMGSZ).is_dir()


def test_parity_notices_each_kind_of_difference() -> None:
    base = Detection(1, 0.80, (10.0, 10.0, 110.0, 60.0))
    assert mismatches([base], [Detection(1, 0.805, (10.0, 10.0, 110.2, 60.0))], CONF) == []
    assert mismatches([base], [Detection(2, 0.80, base.box)], CONF)  # other class
    assert mismatches([base], [Detection(1, 0.78, base.box)], CONF)  # score off by 0.02
    assert mismatches([base], [Detection(1, 0.80, (12.0, 10.0, 112.0, 60.0))], CONF)  # IoU 0.96
    assert mismatches([base], [], CONF)
    assert mismatches([], [base], CONF)
    near_threshold = Detection(1, CONF + 0.005, base.box)
    assert mismatches([near_threshold], [], CONF) == []  # may fall below the threshold elsewhere
