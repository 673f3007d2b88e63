"""Smart clicks and boxes: how often the YOLO fallback returns the object pointed at, and what a click costs.

    .venv/bin/python scripts/bench_assist.py                 # accuracy over 3 seeds, then latency
    .venv/bin/python scripts/bench_assist.py --seeds 1 --skip-latency

Accuracy (the YOLO fallback, no ASSIST_MODEL), through the real app (``/predict`` with Label
Studio's ``context``), on generated images the test models were not trained on (seeds from
900,000), varying what matters: image size, object size and crowding.

- Clicks: the tiny segment model (``tests/support/tiny_segment.py``). For every drawn object the
  plain call ``YOLO(path).predict(image)`` finds (mask IoU >= 0.5 with the drawn one), 5 clicks at
  random pixels inside the drawn mask, 2 px in from its edge; a click is right when the brush
  region answered has mask IoU >= 0.8 with the plain call's mask of that object. Background
  clicks (at least 6 px from any object) are right when nothing is answered.
- Boxes: the shapes model (``tests/support/trained_model.py``). For every object the plain call
  finds (box IoU >= 0.5), a loose box: the true box grown by 10-40 % of its side on each side at
  random; right when the box answered has IoU >= 0.8 with the plain call's box, and tight when it has
  IoU >= 0.8 with the drawn object's own box (the crop sees small objects larger than the whole
  image shrunk to the model's input, so its box can be the better of the two).

Latency, 2 CPU cores: a task open (``/predict`` without context) against a first click on the
image, a second click (its detections cached), and a smart box, all through the app, with the
tiny segment model and with ``yolo11n-seg`` at 640 (Ultralytics' config, random weights: the real
network's compute) on 1280 x 960 images; then MobileSAM (built from Ultralytics' config, random
weights): the first click on an image (the encoder) and later clicks (the decoder only).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tests.support import tiny_segment  # noqa: E402
from tests.support.synthetic import draw_sample  # noqa: E402
from tests.support.trained_model import trained_shapes_model  # noqa: E402
from yolo_backend.config import Settings  # noqa: E402
from yolo_backend.formats.convert import Detection  # noqa: E402
from yolo_backend.kinds import masks  # noqa: E402

LABELS = '<Label value="receipt"/>'
POINT_XML = ('<View><Image name="image" value="$image"/><KeyPointLabels name="click" toName="image" smart="true">'
             f'{LABELS}</KeyPointLabels><BrushLabels name="mask" toName="image">{LABELS}</BrushLabels></View>')
BOX_XML = ('<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image" smart="true" '
           f'model_path="det.pt">{LABELS}</RectangleLabels></View>')
# (image size, object radius range, objects at most): the segment model learned 160 x 128 images, radius 16-30
CLICK_CASES = [((160, 128), (16, 30), 3), ((160, 128), (12, 18), 6), ((240, 192), (16, 30), 5),
               ((320, 256), (24, 40), 4)]
# (image size, object side range, objects at most): the shapes model learned 256-416 px images, sides 40-120
BOX_CASES = [((320, 256), (40, 120), 3), ((416, 352), (30, 60), 8), ((640, 480), (60, 140), 4)]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def box_iou(a, b) -> float:  # type: ignore[no-untyped-def]
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def click(x: float, y: float, width: int, height: int) -> dict:
    return {"result": [{"type": "keypointlabels", "from_name": "click", "to_name": "image", "is_positive": True,
                        "original_width": width, "original_height": height,
                        "value": {"x": x / width * 100, "y": y / height * 100, "keypointlabels": ["receipt"]}}]}


def drawn(box, width: int, height: int) -> dict:  # type: ignore[no-untyped-def]
    x1, y1, x2, y2 = box
    return {"result": [{"type": "rectanglelabels", "from_name": "box", "to_name": "image",
                        "original_width": width, "original_height": height,
                        "value": {"x": x1 / width * 100, "y": y1 / height * 100, "width": (x2 - x1) / width * 100,
                                  "height": (y2 - y1) / height * 100, "rectanglelabels": ["receipt"]}}]}


class App:
    """The real app (Flask test client) serving MODEL_ROOT/``base``, local files from ``docs``."""

    def __init__(self, root: Path, docs: Path, base: str, **overrides) -> None:  # type: ignore[no-untyped-def]
        from model import YOLOBackend
        from yolo_backend.assist import Assistant
        from yolo_backend.web.http_api import create_app

        settings = Settings.from_env({}, model_root=str(root), model_path=base, model_dir=str(docs.parent / "state"),
                                     local_files_document_root=str(docs), **overrides)
        self.backend = YOLOBackend(settings)
        self.backend.store.start(background=False)
        self.assistant = Assistant(self.backend)
        self.client = create_app(self.backend, assistant=self.assistant).test_client()
        self.task = 0

    def ask(self, name: str, xml: str, context: dict | None = None, same_task: bool = False) -> tuple[list, float]:
        self.task += 0 if same_task else 1
        body = {"tasks": [{"id": self.task, "data": {"image": f"/data/local-files/?d={name}"}}],
                "label_config": xml, "project": "1.1", "params": {"context": context}}
        started = time.perf_counter()
        answer = self.client.post("/predict", json=body)
        seconds = time.perf_counter() - started
        assert answer.status_code == 200, answer.json
        return answer.json["results"][0]["result"], seconds


def click_accuracy(app: App, docs: Path, seed: int) -> dict:
    from ultralytics import YOLO
    from ultralytics.utils.ops import scale_masks

    plain = YOLO(str(tiny_segment.tiny_segment_model()))
    rng = random.Random(seed)
    right = total = back_right = back_total = 0
    for case, (size, radii, count) in enumerate(CLICK_CASES):
        for k in range(6):
            image_seed = 900_000 + seed * 1000 + case * 100 + k
            img, objects = _draw_shapes(image_seed, size, radii, count)
            name = f"click-{image_seed}.png"
            img.save(docs / name)
            truths = [tiny_segment.outline_mask(o, *size) for _, o in objects]
            result = plain.predict(str(docs / name), verbose=False)[0]
            theirs = [] if result.masks is None else list(
                scale_masks(result.masks.data[None].float(), result.orig_shape)[0].numpy() > 0.5)
            for truth in truths:
                match = max(theirs, key=lambda m: mask_iou(m, truth), default=None)
                if match is None or mask_iou(match, truth) < 0.5:
                    continue  # the plain call misses it: nothing to compare with
                inner = _erode(truth, 2)
                ys, xs = np.nonzero(inner if inner.any() else truth)
                for i in rng.sample(range(len(xs)), min(5, len(xs))):
                    regions, _ = app.ask(name, POINT_XML, click(xs[i], ys[i], *size))
                    brush = next((r for r in regions if r["type"] == "brushlabels"), None)
                    total += 1
                    right += brush is not None and mask_iou(masks.region_mask(brush), match) >= 0.8
            taken = _dilate(np.logical_or.reduce(truths), 6)
            ys, xs = np.nonzero(~taken)
            for i in rng.sample(range(len(xs)), min(5, len(xs))):
                regions, _ = app.ask(name, POINT_XML, click(xs[i], ys[i], *size))
                back_total += 1
                back_right += not regions
    return {"clicks": total, "right": right, "background": back_total, "background_right": back_right}


def box_accuracy(app: App, docs: Path, seed: int) -> dict:
    from ultralytics import YOLO

    plain = YOLO(str(trained_shapes_model()))
    rng = random.Random(seed)
    right = tight = total = 0
    drawn_fit, answered_fit, plain_fit = [], [], []
    for case, (size, sides, count) in enumerate(BOX_CASES):
        for k in range(6):
            image_seed = 950_000 + seed * 1000 + case * 100 + k
            img, shapes = draw_sample(image_seed, size=size, max_shapes=count, min_side=sides[0], max_side=sides[1])
            name = f"box-{image_seed}.jpg"
            img.save(docs / name, quality=95)
            result = plain.predict(str(docs / name), verbose=False)[0]
            theirs = result.boxes.xyxy.numpy().tolist()
            for shape in shapes:
                match = max(theirs, key=lambda b: box_iou(b, shape.box), default=None)
                if match is None or box_iou(match, shape.box) < 0.5:
                    continue
                x1, y1, x2, y2 = shape.box
                w, h = x2 - x1, y2 - y1
                loose = (max(0, x1 - rng.uniform(0.1, 0.4) * w), max(0, y1 - rng.uniform(0.1, 0.4) * h),
                         min(size[0], x2 + rng.uniform(0.1, 0.4) * w), min(size[1], y2 + rng.uniform(0.1, 0.4) * h))
                regions, _ = app.ask(name, BOX_XML, drawn(loose, *size))
                total += 1
                drawn_fit.append(box_iou(loose, shape.box))
                plain_fit.append(box_iou(match, shape.box))
                got = (0.0, 0.0, 0.0, 0.0)
                if regions:
                    v = regions[0]["value"]
                    got = (v["x"] * size[0] / 100, v["y"] * size[1] / 100, (v["x"] + v["width"]) * size[0] / 100,
                           (v["y"] + v["height"]) * size[1] / 100)
                right += box_iou(got, match) >= 0.8
                tight += box_iou(got, shape.box) >= 0.8
                answered_fit.append(box_iou(got, shape.box))
    return {"boxes": total, "right": right, "tight": tight, "drawn_iou": statistics.mean(drawn_fit),
            "answered_true_iou": statistics.mean(answered_fit), "plain_true_iou": statistics.mean(plain_fit)}


def latency(app: App, docs: Path, size: tuple[int, int], label: str, images: int = 12, open_label: str = "red"
            ) -> dict:
    """Median ms of a task open (pre-labels of ``open_label``, a class of the model), clicks and a box."""
    open_xml = POINT_XML.replace("receipt", open_label)
    opens, firsts, seconds, boxes = [], [], [], []
    for k in range(images):
        img, objects = _draw_shapes(990_000 + k, size, (size[0] // 10, size[0] // 6), 3)
        name = f"lat-{label}-{k}.png"
        img.save(docs / name)
        x, y = _centre(objects[0][1])
        _, t_open = app.ask(name, open_xml)
        _, t_first = app.ask(name, POINT_XML, click(x, y, *size))
        _, t_second = app.ask(name, POINT_XML, click(x + 1, y + 1, *size), same_task=True)
        xs = [p[0] for p in objects[0][1]]
        ys = [p[1] for p in objects[0][1]]
        around = drawn((min(xs) - 5, min(ys) - 5, max(xs) + 5, max(ys) + 5), *size)["result"][0]
        _, t_box = app.ask(name, POINT_XML.replace("KeyPointLabels", "RectangleLabels"),  # a smart box, same controls
                           {"result": [{**around, "from_name": "click"}]})
        if k:  # the first image pays the warm-up
            opens.append(t_open)
            firsts.append(t_first)
            seconds.append(t_second)
            boxes.append(t_box)
    return {name: statistics.median(values) * 1000 for name, values in
            (("open", opens), ("first_click", firsts), ("second_click", seconds), ("box", boxes))}


def sam_latency(root: Path, docs: Path, size: tuple[int, int], images: int = 4) -> dict:
    """MobileSAM through the app (first click: the encoder; later clicks: the decoder), and its stages alone."""
    from ultralytics.models.sam.predict import Predictor

    app = App(root, docs, "seg.pt", assist_model="mobile_sam.pt")
    segmenter = app.assistant._load()
    firsts, laters, decoder, smooth = [], [], [], []
    for k in range(images):
        img, objects = _draw_shapes(995_000 + k, size, (40, 80), 3)
        name = f"sam-{k}.png"
        img.save(docs / name)
        x, y = _centre(objects[0][1])
        _, first = app.ask(name, POINT_XML, click(x, y, *size))
        later = [app.ask(name, POINT_XML, click(x + d, y, *size), same_task=True)[1] for d in range(1, 6)]
        features = next(reversed(segmenter._features.values()))  # this image's, cached by the first click
        for d in range(5):
            started = time.perf_counter()
            Predictor.inference_features(segmenter.predictor, features, (size[1], size[0]), points=[[[x + d, y]]],
                                         labels=[[1]])
            decoder.append(time.perf_counter() - started)
        truth = tiny_segment.outline_mask(objects[0][1], *size)  # a smooth mask of that size, as a trained SAM's
        started = time.perf_counter()
        outline = masks.mask_outline(truth)
        masks.KIND.to_value(Detection(0, 1.0, (0, 0, 1, 1), tuple(map(tuple, outline))), *size)
        smooth.append(time.perf_counter() - started)
        if k:
            firsts.append(first)
            laters += later
    return {"first_click": statistics.median(firsts) * 1000, "later_click": statistics.median(laters) * 1000,
            "smooth_conversion": statistics.median(smooth[1:]) * 1000,
            "decoder": statistics.median(decoder) * 1000, "decoder_p90": sorted(decoder)[int(0.9 * (len(decoder) - 1))]
            * 1000, "embedded": segmenter.embedded}


def _draw_shapes(seed: int, size: tuple[int, int], radii: tuple[float, float], count: int):  # type: ignore[no-untyped-def]
    """``tiny_segment.draw`` with another size, object radius and crowding."""
    import math

    rng = random.Random(seed)
    noise = np.random.default_rng(seed).integers(-12, 13, (size[1], size[0], 1))
    pixels = np.clip(128 + noise, 0, 255).repeat(3, axis=2).astype(np.uint8)
    objects = []
    wanted = rng.randint(max(1, count // 2), count)
    for _ in range(wanted * 40):
        if len(objects) == wanted:
            break
        radius = rng.uniform(*radii)
        cx, cy = rng.uniform(radius + 2, size[0] - radius - 2), rng.uniform(radius + 2, size[1] - radius - 2)
        if any(math.dist((cx, cy), _centre(o)) < radius + r + 6 for r, (_, o) in objects):
            continue
        cls = rng.randrange(2)
        shape = tiny_segment.outline(rng.choice(("square", "triangle", "circle")), cx, cy, radius, rng.uniform(0, 120))
        pixels[tiny_segment.outline_mask(shape, *size)] = tiny_segment.COLOURS[cls]
        objects.append((radius, (cls, shape)))
    return Image.fromarray(pixels), [o for _, o in objects]


def _centre(points) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    return sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)


def _erode(mask: np.ndarray, pixels: int) -> np.ndarray:
    import cv2

    return cv2.erode(mask.astype(np.uint8), np.ones((2 * pixels + 1,) * 2, np.uint8)).astype(bool)


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * pixels + 1,) * 2, np.uint8)).astype(bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    import torch
    from ultralytics import YOLO
    from ultralytics.models.sam.build import build_mobile_sam

    work = Path(tempfile.mkdtemp(prefix="bench-assist-"))
    root, docs = work / "models", work / "docs"
    root.mkdir()
    docs.mkdir()
    shutil.copyfile(tiny_segment.tiny_segment_model(), root / "seg.pt")
    shutil.copyfile(trained_shapes_model(), root / "det.pt")
    try:
        if not args.skip_accuracy:
            app = App(root, docs, "seg.pt")
            rows = []
            for seed in range(1, args.seeds + 1):
                clicks, boxes = click_accuracy(app, docs, seed), box_accuracy(app, docs, seed)
                rows.append((clicks, boxes))
                print(f"seed {seed}: clicks right {clicks['right']}/{clicks['clicks']}, background right "
                      f"{clicks['background_right']}/{clicks['background']}, boxes right {boxes['right']}/"
                      f"{boxes['boxes']} and tight on the drawn object {boxes['tight']}/{boxes['boxes']} (mean IoU "
                      f"with the drawn object's box: loose {boxes['drawn_iou']:.2f}, the plain call's "
                      f"{boxes['plain_true_iou']:.2f}, answered {boxes['answered_true_iou']:.2f})", flush=True)
            for name, key, of, index in (("clicks", "right", "clicks", 0), ("background", "background_right",
                                                                             "background", 0),
                                         ("boxes (vs the plain call's box)", "right", "boxes", 1),
                                         ("boxes (vs the drawn object's box)", "tight", "boxes", 1)):
                rates = [r[index][key] / max(1, r[index][of]) for r in rows]
                print(f"{name}: {statistics.mean(rates):.3f} right (seeds {min(rates):.3f}-{max(rates):.3f}; "
                      f"{sum(r[index][of] for r in rows)} in all)")
        if not args.skip_latency:
            from yolo_backend.serving.detector import set_torch_threads

            set_torch_threads(0)  # the worker's share of the cores, as the service sets it
            print(f"torch threads: {torch.get_num_threads()}")
            small = latency(App(root, docs, "seg.pt"), docs, (160, 128), "tiny")
            print("tiny segment model at 128 px, 160 x 128 images, median ms: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in small.items())
                  + f"; first click / open {small['first_click'] / small['open']:.2f}")
            YOLO("yolo11n-seg.yaml").save(str(root / "yolo11n-seg-random.pt"))
            big = latency(App(root, docs, "yolo11n-seg-random.pt", imgsz="640"), docs, (1280, 960), "big", images=8,
                          open_label="0")
            print("yolo11n-seg at 640 (random weights), 1280 x 960 images, median ms: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in big.items())
                  + f"; first click / open {big['first_click'] / big['open']:.2f}")
            torch.save(build_mobile_sam(None).state_dict(), root / "mobile_sam.pt")
            sam = sam_latency(root, docs, (1280, 960))
            print(f"MobileSAM (random weights), 1280 x 960, median: first click {sam['first_click']:.0f} ms (the "
                  f"encoder), later clicks {sam['later_click']:.0f} ms through the app, of which the decoder "
                  f"{sam['decoder']:.0f} ms (p90 {sam['decoder_p90']:.0f}); {sam['embedded']} embeddings for 4 images. "
                  "Random weights give noise masks (outlines of tens of thousands of points), whose conversion to "
                  "Label Studio's formats is the rest; a trained network's masks are smooth: converting a smooth "
                  f"mask of that size takes {sam['smooth_conversion']:.1f} ms.")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
