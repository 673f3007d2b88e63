"""One command to see pre-labels in a browser: ``python scripts/demo.py``.

Starts a real Label Studio and this backend (``gunicorn _wsgi:app``) on loopback, creates a
project with sample images, connects the backend, asks it for predictions of every task, and
prints the URL and login. Runs until Ctrl-C, then stops both.

Offline by default: generated shape images (some stored sideways with an EXIF tag) and a
small model trained on such shapes (a few minutes the first time, then cached). When the
pretrained COCO weights are at ``models/yolov5nu.pt`` and photos are available (``--photos``,
default coco128 when present), it serves those weights on the photos instead.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the demo reuses the e2e suite's launchers

from tests.e2e import projects  # noqa: E402
from tests.support.backend_server import BackendServer, start_backend  # noqa: E402
from tests.support.label_studio import LabelStudioServer, start_label_studio  # noqa: E402
from tests.support.sample_images import write_samples  # noqa: E402

PRETRAINED = REPO / "models" / "yolov5nu.pt"
COCO128 = REPO.parent / "shared" / "datasets" / "coco128" / "images" / "train2017"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ls-port", type=int, default=8080, help="Label Studio port (default 8080)")
    parser.add_argument("--backend-port", type=int, default=9090, help="backend port (default 9090)")
    parser.add_argument("--workdir", type=Path, default=REPO / "data" / "demo",
                        help="where Label Studio's database, images and the backend state go (wiped at start)")
    parser.add_argument("--images", type=int, default=20, help="how many images the sample project gets")
    parser.add_argument("--model", choices=("auto", "shapes", "pretrained"), default="auto",
                        help="auto: pretrained weights when models/yolov5nu.pt and photos exist, else shapes")
    parser.add_argument("--photos", type=Path, default=COCO128, help="photos for the pretrained model")
    parser.add_argument("--password", default="demo-password", help="password of demo@example.com")
    parser.add_argument("--exit", action="store_true", help="stop after setting up (for CI smoke runs)")
    return parser.parse_args()


def pick_model(args: argparse.Namespace, workdir: Path) -> tuple[Path, str, list[Path], str]:
    """(MODEL_ROOT, MODEL_PATH, images in the document root, label config) for the chosen mode."""
    photos = sorted(args.photos.glob("*.jpg"))[: args.images] if args.photos.is_dir() else []
    docs = workdir / "label-studio" / "files" / "samples"
    if args.model == "pretrained" or (args.model == "auto" and PRETRAINED.is_file() and photos):
        if not PRETRAINED.is_file() or not photos:
            sys.exit(f"--model pretrained needs {PRETRAINED} and .jpg photos in {args.photos}")
        docs.mkdir(parents=True)
        images = [Path(shutil.copy(p, docs / p.name)) for p in photos]
        return PRETRAINED.parent, PRETRAINED.name, images, coco_label_config()
    from tests.support.trained_model import trained_shapes_model

    print("model: a yolov5nu trained on generated shapes (the first run trains it: a few minutes)", flush=True)
    root = workdir / "models"
    root.mkdir(parents=True)
    shutil.copyfile(trained_shapes_model(), root / "shapes.pt")
    samples = write_samples(docs, args.images, first_seed=42, orientations=(1, 1, 6, 3, 8))
    return root, "shapes.pt", [s.path for s in samples], projects.LABEL_CONFIG


def coco_label_config() -> str:
    from ultralytics import YOLO

    names = YOLO(str(PRETRAINED)).names.values()
    labels = "\n".join(f'    <Label value="{name}"/>' for name in names)
    return (f'<View>\n  <Image name="image" value="$image"/>\n  <RectangleLabels name="label" toName="image">\n'
            f"{labels}\n  </RectangleLabels>\n</View>")


def set_up(args: argparse.Namespace) -> tuple[LabelStudioServer, BackendServer, int]:
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    model_root, model_path, images, label_config = pick_model(args, workdir)
    print(f"starting Label Studio on http://127.0.0.1:{args.ls_port} ...", flush=True)
    ls = start_label_studio(workdir / "label-studio", port=args.ls_port, email="demo@example.com",
                            password=args.password)
    try:
        print(f"starting the backend on http://127.0.0.1:{args.backend_port} ...", flush=True)
        backend = start_backend(workdir / "backend", {
            "MODEL_ROOT": str(model_root), "MODEL_PATH": model_path, "LABEL_STUDIO_URL": ls.base_url,
            "LABEL_STUDIO_API_KEY": ls.legacy_token, "MODEL_DIR": str(workdir / "backend" / "model-dir"),
            "IMGSZ": "auto",  # each model at the size it learned at (160 px for shapes.pt)
        }, port=args.backend_port)
    except BaseException:
        ls.stop()
        raise
    project = ls.client().projects.create(title="YOLO demo", label_config=label_config).id
    projects.import_local_tasks(ls, project, images)
    projects.connect_backend(ls, project, backend.url, title="yolo")
    ls.client().actions.create(id="retrieve_tasks_predictions", project=project,
                               selected_items={"all": True, "excluded": []})
    return ls, backend, int(project)


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    ls, backend, project = set_up(args)
    try:
        tasks = ls.api("GET", "/api/tasks", params={"project": project, "page_size": 1000}).json()["tasks"]
        labeled = sum(1 for t in tasks if t.get("total_predictions"))
        print(f"\n{labeled} of {len(tasks)} tasks have a prediction from the backend.", flush=True)
        print(f"Ready in {time.monotonic() - started:.0f} s. Open {ls.base_url}/projects/{project}/data\n"
              f"  login:    {ls.email}\n  password: {ls.password}\n"
              f"  backend:  {backend.url} (model {backend.health()['model_version']})\n"
              "Click a task: the boxes are the backend's pre-labels. Ctrl-C stops both servers.", flush=True)
        while not args.exit:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        backend.stop()
        ls.stop()


if __name__ == "__main__":
    main()
