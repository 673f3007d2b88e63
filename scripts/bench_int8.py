"""What int8 costs in accuracy and gives in speed, on a model that really detects something.

    .venv/bin/python scripts/bench_int8.py              # trained shapes model, 200 generated images
    .venv/bin/python scripts/bench_int8.py --model models/yolo11n.pt --folder datasets/coco128

Runs the gate exactly as ``yolo-ls int8`` does (odd images judge, even ones calibrate), then
prints fp32 and int8 side by side: mAP50-95 and F1 at MODEL_SCORE_THRESHOLD on the judged
images, how many boxes agree one to one with fp32 (same class, IoU >= 0.99, score within
0.01: parity is reported, not required), and the engine's time per image at 1 and 2
threads. Without --model: the cached trained shapes model (tests/support/trained_model.py)
and a generated folder. Not a test: the numbers go to docs/speed.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def generated_folder(root: Path, count: int) -> Path:
    from tests.support.synthetic import draw_sample, yolo_lines

    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img, shapes = draw_sample(70_000 + i, size=(320, 256), max_shapes=5, min_side=20, max_side=110)
        img.save(root / f"{i:04d}.jpg", quality=92)
        (root / f"{i:04d}.txt").write_text("\n".join(yolo_lines(shapes, *img.size)) + "\n")
    return root


def engine_ms(graph: Path, images: list, imgsz: int, threads: int) -> float:
    import onnxruntime

    from yolo_backend.serving.int8 import letterboxed

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    inputs = [letterboxed(pixels, imgsz) for pixels in images]
    for x in inputs[:3]:
        session.run(None, {name: x})
    times = []
    for x in inputs:
        started = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="checkpoint (default: the trained shapes model)")
    parser.add_argument("--folder", type=Path, help="labeled YOLO folder (default: 200 generated shapes images)")
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    import cv2

    from yolo_backend.config import Settings
    from yolo_backend.formats.yolo_folder import find_samples
    from yolo_backend.serving import int8, runtime
    from yolo_backend.serving.detector import Detector, checkpoint_imgsz, load_ultralytics
    from yolo_backend.serving.parity import same_detections
    from yolo_backend.training.quantize import for_base

    if args.model is None:
        from tests.support.trained_model import trained_shapes_model

        args.model = trained_shapes_model()
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        folder = args.folder or generated_folder(Path(tmp) / "folder", args.images)
        settings = Settings.from_env({**os.environ, "MODEL_DIR": str(Path(tmp) / "state")})
        started = time.perf_counter()
        gate = for_base(args.model, folder, settings)
        made = time.perf_counter() - started
        imgsz = gate.get("imgsz") or checkpoint_imgsz(args.model)
        key = runtime.content_key(args.model)
        cache_root = settings.model_dir_path / "runtime"
        graph = int8.folder_for(cache_root, key, imgsz) / "model-int8.onnx"
        fp32_graph = runtime.passed(runtime.export_dir(cache_root, key, "onnx", imgsz), "onnx")
        judged = [s.image for s in find_samples(folder) if s.label is not None][1::2]
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in judged]
        fp32 = Detector(load_ultralytics(fp32_graph, "detect"), imgsz=imgsz)
        quantized = Detector(load_ultralytics(graph, "detect"), imgsz=imgsz)
        conf = settings.model_score_threshold
        parity = same_detections(fp32.detect(images, conf=conf), quantized.detect(images, conf=conf), conf)
        print(f"\nmodel {args.model.name} at {imgsz} px; {gate.get('judged_images')} judged and "
              f"{gate.get('calibration_images')} calibration images; quantized and judged in {made:.0f} s")
        print(f"gate: {gate['reason']}")
        print("| | fp32 | int8 |\n|---|---|---|")
        for name in gate["fp32"]:
            print(f"| {name} | {gate['fp32'][name]:.4f} | {gate['int8'].get(name, float('nan')):.4f} |")
        for threads in (1, 2):
            print(f"| engine ms per image, {threads} thread{'s' if threads > 1 else ''} | "
                  f"{engine_ms(fp32_graph, images[:40], imgsz, threads):.1f} | "
                  f"{engine_ms(graph, images[:40], imgsz, threads):.1f} |")
        print(f"| file size | {fp32_graph.stat().st_size / 1e6:.1f} MB | {graph.stat().st_size / 1e6:.1f} MB |")
        print(f"parity at conf {conf}: {parity.compared} boxes agree one to one with fp32, "
              f"{len(parity.problems)} differ")


if __name__ == "__main__":
    main()
