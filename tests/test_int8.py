"""INT8 (opt-in) serves only behind its holdout gate; bulk lanes give the same boxes as one session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.support.synthetic import draw_sample
from yolo_backend import int8, runtime
from yolo_backend.config import Settings
from yolo_backend.detector import Detector, load_ultralytics
from yolo_backend.parity import same_detections

IMGSZ = 160  # the trained shapes model's own size


def _bgr(seed: int, size: tuple[int, int] = (192, 160)) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(draw_sample(seed, size=size)[0])[:, :, ::-1])


IMAGES = [_bgr(seed, size) for seed, size in enumerate([(192, 160), (160, 192), (160, 160), (224, 128)] * 2)]


@pytest.fixture(scope="module")
def shapes() -> Path:
    from tests.support.trained_model import trained_shapes_model

    return trained_shapes_model()


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state") / "runtime"


@pytest.fixture(scope="module")
def fp32(shapes: Path, cache_root: Path) -> runtime.Verdict:
    verdict = runtime.prepare(shapes, "onnx", "cpu", IMGSZ, cache_root, IMAGES)
    assert verdict.runtime == "onnx", verdict.reason
    return verdict


def _scores(metric: float, f1: float) -> dict[str, float]:
    return {"mAP50-95": metric, "f1": f1}


@pytest.mark.parametrize(("int8_scores", "ok", "named"), [
    (_scores(0.80, 0.90), True, ""),
    (_scores(0.79, 0.89), True, ""),  # exactly one point each: allowed
    (_scores(0.785, 0.90), False, "mAP50-95"),
    (_scores(0.80, 0.88), False, "f1"),
    (_scores(0.70, 0.70), False, "mAP50-95 and f1"),
    (_scores(0.85, 0.95), True, ""),  # better is fine
])
def test_the_gate_allows_at_most_one_point_of_each(int8_scores: dict[str, float], ok: bool, named: str) -> None:
    gate = int8.judge(_scores(0.80, 0.90), int8_scores, "mAP50-95")
    assert gate.ok is ok, gate.reason
    if not ok:
        assert f"in {named} (" in gate.reason and "fp32 serves" in gate.reason


def test_int8_settings_are_checked() -> None:
    assert Settings.from_env({}).int8 is False  # opt-in
    assert Settings.from_env({"INT8": "true", "INT8_MAX_DROP": "0.02"}).int8_max_drop == 0.02
    with pytest.raises(ValueError, match="INT8_MAX_DROP"):
        Settings.from_env({"INT8_MAX_DROP": "2"})
    with pytest.raises(ValueError, match="BULK_LANES"):
        Settings.from_env({"BULK_LANES": "-1"})


def test_quantizing_keeps_the_head_decoding_in_fp32(shapes: Path, fp32: runtime.Verdict, tmp_path: Path) -> None:
    graph = onnx.load(str(int8.quantize(fp32.path, tmp_path / "model-int8.onnx", IMAGES, IMGSZ))).graph
    nodes = {node.name: node for node in graph.node}
    qdq = ("QuantizeLinear", "DequantizeLinear")
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert sum(1 for n in convs if n.input[0] in dequantized) >= 50, "the convolutions are quantized"
    head = [name for name in int8.head_nodes(graph) if nodes[name].op_type not in qdq]
    assert any("/dfl/" in name for name in head) and any(nodes[n].op_type == "Sigmoid" for n in head)
    for name in head:  # DFL, sigmoid, box arithmetic: computed in fp32, their results never quantized
        node = nodes[name]
        assert all(other.op_type != "QuantizeLinear" for other in graph.node if set(other.input) & set(node.output))
    producers = {out: node for node in graph.node for out in node.output}
    assert all(producers[out.name].op_type not in qdq for out in graph.output)


def test_int8_serves_only_after_its_gate_passed(shapes: Path, fp32: runtime.Verdict, cache_root: Path) -> None:
    key = runtime.content_key(shapes)
    fp32_detector = Detector.load(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, lanes=1)
    assert fp32_detector.runtime == "onnx"
    # not judged yet: fp32 serves, even with INT8 on
    assert Detector.load(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, int8=True,
                         lanes=1).runtime == "onnx"

    judged: list[Path] = []

    def failing(graph: Path) -> dict[str, float]:
        judged.append(graph)
        return _scores(0.5, 0.5)

    gate = int8.prepare(key, fp32.path, cache_root, IMGSZ, IMAGES, failing, _scores(0.9, 0.9), "mAP50-95")
    assert not gate.ok and judged and int8.passed(cache_root, key, IMGSZ) is None
    assert Detector.load(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, int8=True,
                         lanes=1).runtime == "onnx"

    def honest(graph: Path) -> dict[str, float]:  # the graph itself, against fp32 on the same images
        quantized = Detector(load_ultralytics(graph, "detect"), imgsz=IMGSZ)
        expected = fp32_detector.detect(IMAGES, conf=0.25)
        got = quantized.detect(IMAGES, conf=0.25)
        found = sum(map(len, got))
        assert found >= sum(map(len, expected)) // 2, (found, expected)
        return _scores(0.9, 0.9)

    gate = int8.prepare(key, fp32.path, cache_root, IMGSZ, IMAGES, honest, _scores(0.905, 0.9), "mAP50-95")
    assert gate.ok, gate.reason
    served = Detector.load(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, int8=True,
                           lanes=1)
    assert served.runtime == "onnx-int8" and served.source == int8.passed(cache_root, key, IMGSZ)
    # off by default: the same cache serves fp32
    assert Detector.load(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False,
                         lanes=1).runtime == "onnx"
    parity = same_detections(fp32_detector.detect(IMAGES, conf=0.25), served.detect(IMAGES, conf=0.25), 0.25)
    print(f"\nint8 against fp32 on {len(IMAGES)} images: {parity.compared} boxes matched, "
          f"{len(parity.problems)} problems")


def test_bulk_lanes_give_the_boxes_of_one_session(shapes: Path, fp32: runtime.Verdict, cache_root: Path) -> None:
    detector = Detector.load(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, lanes=2)
    single = detector.detect(IMAGES, conf=0.25)
    assert detector.lanes == []  # made on the first many-image call, not before
    bulk = detector.detect(IMAGES, conf=0.25, bulk=True)
    assert len(detector.lanes) == 2
    for lane in detector.lanes:  # one thread each: side by side on two cores
        session = lane.model.predictor.model.backend.session
        assert session.get_session_options().intra_op_num_threads == 1
    assert [len(d) for d in bulk] == [len(d) for d in single]
    assert same_detections(single, bulk, 0.25).ok or sum(map(len, single)) < 20
    for a, b in zip(single, bulk):
        assert [d.class_id for d in a] == [d.class_id for d in b]
        assert np.allclose([d.box for d in a], [d.box for d in b], atol=0.5) if a else not b
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("lane")]  # no thread outlives its call
    torch_detector = Detector.load(shapes, imgsz=IMGSZ, lanes=2)  # torch: one pool per process, no lanes
    torch_detector.detect(IMAGES, conf=0.25, bulk=True)
    assert torch_detector.lanes == []


def _shapes_folder(root: Path, count: int) -> Path:
    from tests.support.synthetic import yolo_lines

    root.mkdir(parents=True)
    for i in range(count):
        img, shapes = draw_sample(50_000 + i, size=(192, 160), max_shapes=3, min_side=24, max_side=80)
        img.save(root / f"{i:03d}.jpg", quality=92)
        (root / f"{i:03d}.txt").write_text("\n".join(yolo_lines(shapes, *img.size)) + "\n")
    return root


def test_yolo_ls_int8_judges_a_base_model_on_a_labeled_folder(shapes: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from yolo_backend import cli

    folder = _shapes_folder(tmp_path / "folder", 24)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "state"))
    code = cli.main(["int8", str(folder), "--model", str(shapes)])
    printed = capsys.readouterr().out
    gate = json.loads(printed[printed.index("{"):])
    print(f"\nyolo-ls int8 on 12 judged shapes images: {gate['reason']}")
    assert gate["judged_images"] == 12 and gate["calibration_images"] == 12 and gate["imgsz"] == IMGSZ
    assert gate["fp32"]["mAP50-95"] > 0.5, gate  # a trained model, judged at MODEL_SCORE_THRESHOLD
    assert code == (0 if gate["ok"] else 3)
    cache_root = tmp_path / "state" / "runtime"
    served = Detector.load(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, int8=True,
                           lanes=1)
    assert served.runtime == ("onnx-int8" if gate["ok"] else "onnx")
    # the second call reuses the copy and its verdict
    assert cli.main(["int8", str(folder), "--model", str(shapes)]) == code


def test_yolo_ls_int8_needs_labeled_images(shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from yolo_backend import cli

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "state"))
    assert cli.main(["int8", str(tmp_path / "empty"), "--model", str(shapes)]) == 2
    assert "0 labeled images; the gate needs at least 4" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()  # nothing made
