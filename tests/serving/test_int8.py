"""INT8 (opt-in) serves only behind its holdout gate; bulk lanes give the same boxes as one session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.support.synthetic import draw_sample
from yolo_backend.config import Settings
from yolo_backend.serving import int8, runtime
from yolo_backend.serving.detector import Detector, load_ultralytics
from yolo_backend.serving.loader import load_detector
from yolo_backend.serving.parity import same_detections

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
    fp32_detector = load_detector(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, lanes=1)
    assert fp32_detector.runtime == "onnx"
    # not judged yet: fp32 serves, even with INT8 on
    assert load_detector(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, int8=True,
                         lanes=1).runtime == "onnx"

    judged: list[Path] = []

    def failing(graph: Path) -> dict[str, float]:
        judged.append(graph)
        return _scores(0.5, 0.5)

    gate = int8.prepare(key, fp32.path, cache_root, IMGSZ, IMAGES, failing, _scores(0.9, 0.9), "mAP50-95")
    assert not gate.ok and judged and int8.passed(cache_root, key, IMGSZ) is None
    assert load_detector(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, int8=True,
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
    served = load_detector(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, int8=True,
                           lanes=1)
    assert served.runtime == "onnx-int8" and served.source == int8.passed(cache_root, key, IMGSZ)
    # off by default: the same cache serves fp32
    assert load_detector(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False,
                         lanes=1).runtime == "onnx"
    parity = same_detections(fp32_detector.detect(IMAGES, conf=0.25), served.detect(IMAGES, conf=0.25), 0.25)
    print(f"\nint8 against fp32 on {len(IMAGES)} images: {parity.compared} boxes matched, "
          f"{len(parity.problems)} problems")


def test_bulk_lanes_give_the_boxes_of_one_session(shapes: Path, fp32: runtime.Verdict, cache_root: Path) -> None:
    detector = load_detector(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, lanes=2)
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
    torch_detector = load_detector(shapes, imgsz=IMGSZ, lanes=2)  # torch: one pool per process, no lanes
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
    served = load_detector(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, int8=True,
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


# -- a version's int8 copy, judged at the thresholds it is served with (issue 22, fault 8) ---------------------------
SHAPES_CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
                 '<Label value="square"/><Label value="circle"/></RectangleLabels></View>')


@pytest.fixture(scope="module")
def version(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The trained shapes model as a run's candidate: a real holdout, its fp32 export, the thresholds it publishes."""
    from tests.support.synthetic import yolo_lines
    from yolo_backend import kinds
    from yolo_backend.formats.label_config import parse
    from yolo_backend.training import holdout, scoring
    from yolo_backend.training.examples import Dataset, Example

    root = tmp_path_factory.mktemp("version")
    examples = []
    for i in range(72):  # 32 to calibrate on (a run's training images), 40 held out
        img, drawn = draw_sample(70_000 + i, size=(192, 160), max_shapes=3, min_side=24, max_side=80)
        img.save(root / f"{i:03d}.jpg", quality=92)
        examples.append(Example(i, root / f"{i:03d}.jpg", tuple(yolo_lines(drawn, *img.size))))
    dataset = Dataset(root / "data.yaml", ["square", "circle"], examples[:32], [], examples[32:])
    spec = parse(SHAPES_CONFIG)[0]
    kind = kinds.for_result("rectanglelabels", "detect")
    settings = Settings.from_env({}, model_dir=str(root / "state"), device="cpu", int8=True,
                                 model_score_threshold=0.25)
    images = [pixels for chunk in holdout.holdout_images(dataset.holdout[:16]) for _, pixels in chunk]
    verdict = runtime.prepare(shapes, "onnx", "cpu", IMGSZ, settings.model_dir_path / "runtime", images)
    assert verdict.runtime == "onnx", verdict.reason
    found = holdout.predict_holdout(shapes, dataset.holdout, spec, settings, kind)
    chosen = scoring.best_thresholds(found, 2, settings.model_score_threshold)  # as train.py publishes them
    return {"dataset": dataset, "spec": spec, "kind": kind, "settings": settings, "found": found,
            "verdict": {**verdict.to_json(), "key": runtime.content_key(shapes)},
            "thresholds": {dataset.labels[i]: t for i, t in chosen.items()}}


def _at_served(version: dict, graph: Path | None, shapes: Path) -> tuple[list, list[float]]:
    from yolo_backend.training import holdout

    found = holdout.predict_holdout(shapes, version["dataset"].holdout, version["spec"], version["settings"],
                                    version["kind"], engine=graph)
    return found, [version["thresholds"].get(label, 0.25) for label in version["dataset"].labels]


def _scaled_scores(graph: Path, factor: float, classes: int) -> None:
    """Multiply the class scores of an exported detect graph by ``factor`` (boxes untouched), in place."""
    from onnx import helper, numpy_helper

    model = onnx.load(str(graph))
    name = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [f"{name}_unscaled" if out == name else out for out in node.output]
    scale = np.array([1.0] * 4 + [factor] * classes, np.float32).reshape(1, -1, 1)  # (1, 4 + classes, anchors)
    model.graph.initializer.append(numpy_helper.from_array(scale, "score_scale"))
    model.graph.node.append(helper.make_node("Mul", [f"{name}_unscaled", "score_scale"], [name]))
    onnx.save(model, str(graph))


def test_a_versions_int8_copy_is_judged_and_served_at_its_fp32_thresholds(shapes: Path, version: dict) -> None:
    """A real int8 copy of a trained model passes, and the gate's F1 is the one annotators get from each copy."""
    from yolo_backend.training import quantize, scoring

    settings = version["settings"]
    gate = quantize.for_version(shapes, version["verdict"], IMGSZ, version["dataset"], version["spec"], settings,
                                version["kind"], version["thresholds"])
    cache_root = settings.model_dir_path / "runtime"
    graph = int8.folder_for(cache_root, version["verdict"]["key"], IMGSZ) / "model-int8.onnx"
    fp32_found, served = _at_served(version, None, shapes)
    int8_found, _ = _at_served(version, graph, shapes)
    fp32_f1, int8_f1 = scoring.counts(fp32_found, served).f1, scoring.counts(int8_found, served).f1
    retuned = scoring.score(int8_found, 2, 0.25, choose_per_class=True)  # thresholds chosen on int8's own boxes
    print(f"\nint8 of the shapes model on {len(int8_found)} holdout images at thresholds {version['thresholds']}: "
          f"F1 {int8_f1:.4f} vs fp32 {fp32_f1:.4f} (re-tuned on int8's own boxes: {retuned.f1:.4f}); {gate['reason']}")
    assert gate["thresholds"] == version["thresholds"], gate
    assert gate["fp32"]["f1"] == round(fp32_f1, 4) and gate["int8"]["f1"] == round(int8_f1, 4), gate
    assert gate["ok"], gate
    served_detector = load_detector(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False,
                                    int8=True, lanes=1)
    assert served_detector.runtime == "onnx-int8" and served_detector.source == graph


def test_an_int8_copy_whose_scores_shifted_is_refused(shapes: Path, version: dict, tmp_path: Path) -> None:
    """A copy whose boxes rank as fp32's but whose scores all fell (as a badly calibrated head gives) is refused.

    Its mAP is fp32's (ranks are unchanged) and thresholds re-tuned on its own boxes would give
    the same F1, so a gate judging at such thresholds passes it; served at fp32's thresholds it
    hides most boxes from annotators.
    """
    from dataclasses import replace

    from yolo_backend.training import quantize, scoring

    settings = replace(version["settings"], model_dir=str(tmp_path / "state"))
    cache_root = settings.model_dir_path / "runtime"
    key = version["verdict"]["key"]
    graph = int8.folder_for(cache_root, key, IMGSZ) / "model-int8.onnx"
    graph.parent.mkdir(parents=True)
    calibration = [pixels for e in version["dataset"].train for pixels in [_read(e.image)]]
    _scaled_scores(int8.quantize(Path(version["verdict"]["path"]), graph, calibration, IMGSZ), 0.2, 2)

    gate = quantize.for_version(shapes, version["verdict"], IMGSZ, version["dataset"], version["spec"], settings,
                                version["kind"], version["thresholds"])
    shifted, served = _at_served(version, graph, shapes)
    own = int8.judge(quantize._pair(scoring.score(version["found"], 2, 0.25, choose_per_class=True)),
                     quantize._pair(scoring.score(shifted, 2, 0.25, choose_per_class=True)), "mAP50-95")
    print(f"\nscores x0.2: {gate['reason']}; at thresholds re-tuned on its own boxes: {own.reason}")
    assert own.ok, own  # the copy only fails where it is served: at fp32's thresholds
    assert not gate["ok"] and "in f1" in gate["reason"] and "fp32 serves" in gate["reason"], gate
    assert gate["int8"]["f1"] == round(scoring.counts(shifted, served).f1, 4), gate
    assert int8.passed(cache_root, key, IMGSZ) is None
    assert load_detector(shapes, runtime="onnx", cache_root=cache_root, imgsz=IMGSZ, prepare=False, int8=True,
                         lanes=1).runtime != "onnx-int8"


def _read(image: Path) -> np.ndarray:
    import cv2

    return cv2.imread(str(image), cv2.IMREAD_COLOR)
