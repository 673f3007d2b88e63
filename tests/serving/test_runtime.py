"""Exported CPU engines serve only after answering as torch does on enough boxes; torch otherwise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ultralytics import YOLO

from tests.support import random_model
from tests.support.synthetic import draw_sample
from yolo_backend.config import Settings
from yolo_backend.formats.convert import Detection
from yolo_backend.serving import runtime
from yolo_backend.serving.detector import Detector
from yolo_backend.serving.loader import load_detector
from yolo_backend.serving.model_store import ModelStore
from yolo_backend.serving.parity import MIN_COMPARED_BOXES, mismatches, same_detections

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


def _load(checkpoint: Path, engine: str, cache_root: Path, prepare: bool = True) -> Detector:
    """As the model store loads it: exports cached under MODEL_DIR/runtime."""
    return load_detector(checkpoint, runtime=engine, cache_root=cache_root, imgsz=IMGSZ, prepare=prepare)


def _folder(cache_root: Path, checkpoint: Path, engine: str = "onnx") -> Path:
    return runtime.export_dir(cache_root, runtime.content_key(checkpoint), engine, IMGSZ)


@pytest.fixture(scope="module")
def reference(lively: Path) -> list[list[Detection]]:
    return load_detector(lively, imgsz=IMGSZ).detect(IMAGES, conf=CONF)


def test_the_random_model_finds_things(reference: list[list[Detection]]) -> None:
    """Otherwise every parity check below would compare next to nothing."""
    assert sum(1 for found in reference if found) >= 3 and sum(map(len, reference)) >= MIN_COMPARED_BOXES
    assert len({d.class_id for found in reference for d in found}) > 1


@pytest.mark.parametrize("engine", ["onnx", "openvino"])
def test_exported_engine_matches_torch(engine: str, lively: Path, reference, state: Path) -> None:
    if not runtime.available(engine):
        pytest.skip(f"{engine} is not installed")
    fast = _load(lively, engine, state / "runtime")
    assert fast.runtime == engine
    assert fast.names == Detector(YOLO(str(lively))).names and len(fast.names) == 80
    parity = same_detections(reference, fast.detect(IMAGES, conf=CONF), CONF)
    assert parity.ok and parity.compared >= MIN_COMPARED_BOXES, parity.problems
    verdict = runtime.read_verdict(_folder(state / "runtime", lively, engine))
    assert verdict and verdict["ok"] is True and verdict["runtime"] == engine
    assert verdict["compared"] >= MIN_COMPARED_BOXES


def test_export_is_made_once_per_content_key(lively: Path, state: Path, tmp_path: Path) -> None:
    _load(lively, "onnx", state / "runtime")
    exported = runtime.exported_file(_folder(state / "runtime", lively), "onnx")
    assert exported is not None
    stamp = exported.stat().st_mtime_ns
    renamed = shutil.copyfile(lively, tmp_path / "same-bytes-other-name.pt")
    for checkpoint in (lively, renamed):
        again = _load(checkpoint, "onnx", state / "runtime")
        assert again.runtime == "onnx" and again.model.ckpt_path == str(exported)
    assert exported.stat().st_mtime_ns == stamp
    assert runtime.export_dirs(state / "runtime", runtime.content_key(lively)) == [_folder(state / "runtime", lively)]
    other = random_model.build(tmp_path / "other.pt", seed=7)
    assert runtime.content_key(other) != runtime.content_key(lively)


def test_another_checkpoints_export_under_this_key_falls_back_to_torch(lively: Path, tmp_path: Path) -> None:
    """A graph of other weights in this key's folder, with no passing verdict: the check catches it."""
    other = random_model.build(tmp_path / "other.pt", seed=7)
    assert runtime.prepare(other, "onnx", "cpu", IMGSZ, tmp_path, IMAGES).runtime == "onnx"
    stale = _folder(tmp_path, lively)
    stale.mkdir()
    shutil.copyfile(runtime.exported_file(_folder(tmp_path, other), "onnx"), stale / "lively.onnx")
    assert runtime.prepared(lively, "onnx", "cpu", IMGSZ, tmp_path).runtime == "torch"
    verdict = runtime.prepare(lively, "onnx", "cpu", IMGSZ, tmp_path, IMAGES)
    assert verdict.runtime == "torch" and verdict.path == lively and "no partner" in verdict.reason
    assert runtime.read_verdict(stale)["ok"] is False
    assert _load(lively, "onnx", tmp_path, prepare=False).runtime == "torch"


def test_a_corrupt_export_falls_back_to_torch(lively: Path, reference, state: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path, lively)
    folder.mkdir(parents=True)
    (folder / "lively.onnx").write_bytes(b"not an onnx graph")
    served = _load(lively, "onnx", tmp_path)
    assert served.runtime == "torch"
    assert same_detections(reference, served.detect(IMAGES, conf=CONF), CONF).ok
    # Broken after it passed: the web worker trusts the verdict, fails to load the graph, serves torch.
    _load(lively, "onnx", state / "runtime")
    damaged = tmp_path / "damaged"
    shutil.copytree(_folder(state / "runtime", lively), _folder(damaged, lively))
    runtime.exported_file(_folder(damaged, lively), "onnx").write_bytes(b"truncated")
    assert runtime.prepared(lively, "onnx", "cpu", IMGSZ, damaged).runtime == "onnx"
    assert _load(lively, "onnx", damaged, prepare=False).runtime == "torch"


def test_too_few_boxes_to_compare_serve_torch_with_the_reason(random_model_root: Path, tmp_path: Path) -> None:
    """An untrained yolov5nu finds nothing even at conf 0.001: export and torch agree on nothing."""
    silent = random_model_root / "yolov5nu.pt"
    verdict = runtime.prepare(silent, "onnx", "cpu", IMGSZ, tmp_path, runtime.probe_images())
    assert verdict.runtime == "torch" and verdict.compared == 0
    assert verdict.reason.startswith("onnx: only 0 boxes compared (< 20) on 9 images")
    assert verdict.reason.endswith("serving torch")
    assert verdict.to_json() == {"runtime": "torch", "path": str(silent), "compared": 0, "reason": verdict.reason}
    assert runtime.read_verdict(_folder(tmp_path, silent)) == {
        "ok": False, "runtime": "onnx", "compared": 0, "reason": verdict.reason.removesuffix(": serving torch")}
    assert runtime.prepared(silent, "onnx", "cpu", IMGSZ, tmp_path).runtime == "torch"


def test_prepared_never_exports(lively: Path, state: Path, tmp_path: Path) -> None:
    """A web worker only reads verdicts: no verdict, torch, and nothing written."""
    cache = tmp_path / "runtime"
    assert runtime.prepared(lively, "onnx", "cpu", IMGSZ, cache) == runtime.Choice("torch", lively)
    assert _load(lively, "onnx", cache, prepare=False).runtime == "torch"
    assert not cache.exists()
    _load(lively, "onnx", state / "runtime")  # prepared once (the training job's part)
    choice = runtime.prepared(lively, "onnx", "cpu", IMGSZ, state / "runtime")
    assert choice.runtime == "onnx" and choice.path.parent == _folder(state / "runtime", lively)


def test_probe_images_are_varied_bgr_and_serving_never_imports_test_aids() -> None:
    probes = runtime.probe_images()
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for p in probes)
    assert len({round(p.shape[1] / p.shape[0], 2) for p in probes}) >= 4
    assert np.array_equal(probes[0], runtime.probe_images()[0])  # the same check on every start
    script = ("import sys, yolo_backend.serving.runtime\n"
              "assert not [m for m in sys.modules if m.split('.')[0] == 'tests']")
    subprocess.run([sys.executable, "-c", script], check=True)


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
                                 model_dir=str(state), runtime="onnx", imgsz=str(IMGSZ))
    store = ModelStore(settings)
    store.start(background=False)
    served = store.base()
    assert served.detector is not None and served.detector.runtime == "onnx"
    assert _folder(settings.model_dir_path / "runtime", lively).is_dir()


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


def test_parity_pairs_detections_one_to_one() -> None:
    """One box cannot vouch for two: a duplicate on either side is a mismatch."""
    box = Detection(1, 0.80, (10.0, 10.0, 110.0, 60.0))
    twin = Detection(1, 0.801, (10.0, 10.0, 110.1, 60.0))
    assert mismatches([box], [box, twin], CONF)  # two candidates, one reference to claim them
    assert mismatches([box, twin], [box], CONF)  # a reference box duplicated, found once
    assert mismatches([box, twin], [twin, box], CONF) == []


def test_parity_needs_enough_compared_boxes() -> None:
    """Two empty answers agree on nothing: fewer than MIN_COMPARED_BOXES matched boxes fail."""
    assert MIN_COMPARED_BOXES == 20
    assert same_detections([[], []], [[], []], CONF).problems == ("only 0 boxes compared (< 20) on 2 images",)
    boxes = [Detection(i % 3, 0.5, (10.0 * i, 0.0, 10.0 * i + 8, 8.0)) for i in range(20)]
    few = same_detections([boxes[:7]], [boxes[:7]], CONF)
    assert few.compared == 7 and not few.ok and few.problems[0].startswith("only 7 boxes compared (< 20)")
    enough = same_detections([boxes[:12], boxes[12:]], [boxes[:12], boxes[12:]], CONF)
    assert enough.ok and enough.compared == 20


def test_the_base_models_check_runs_in_a_child_process_that_leaves_torch_inference_out_of_the_worker(
        lively: Path, tmp_path: Path) -> None:
    """The worker keeps only the verdict; the torch side of the check ran and ended in another process."""
    cache_root = tmp_path / "runtime"
    verdict = runtime.prepare_apart(lively, "onnx", "cpu", IMGSZ, cache_root)
    assert verdict.runtime == "onnx" and verdict.compared >= MIN_COMPARED_BOXES, verdict.reason
    assert runtime.prepared(lively, "onnx", "cpu", IMGSZ, cache_root).path == verdict.path
    written = runtime.read_verdict(_folder(cache_root, lively))
    assert written is not None and written["reason"] == verdict.reason
    # what a later start does: the same export, reused, not made again
    assert runtime.prepare_apart(lively, "onnx", "cpu", IMGSZ, cache_root).path == verdict.path


def test_a_child_that_cannot_check_serves_torch_with_the_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    verdict = runtime.prepare_apart(broken, "onnx", "cpu", IMGSZ, tmp_path / "runtime")
    assert verdict.runtime == "torch" and verdict.path == broken
    assert "serving torch" in verdict.reason
