"""How fast ``yolo-ls prelabel`` gets through a big project, and what a second run costs.

Starts a throw-away Label Studio (tests/support/label_studio.py), imports N generated images
as tasks, pre-labels them in-process with yolov5nu (random weights: the detections do not
matter, the per-task cost does), then runs again to time the resume check.

    .venv/bin/python scripts/bench_prelabel.py --tasks 1000 --imgsz 320
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# A yolov5nu built from its yaml names its classes "0".."79": predicted_values maps them, so inference runs.
CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
          '<Label value="person" predicted_values="0"/><Label value="car" predicted_values="2"/>'
          '</RectangleLabels></View>')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import os

    from ultralytics import YOLO

    from tests.support.label_studio import start_label_studio
    from tests.support.synthetic import draw_sample
    from yolo_backend.app import build_backend
    from yolo_backend.config import Settings
    from yolo_backend.labelstudio import ls_client
    from yolo_backend.labelstudio.prelabel import InProcessPredictor, prelabel

    os.environ.setdefault("YOLO_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-prelabel-") as work:
        work_path = Path(work)
        server = start_label_studio(work_path / "ls")
        try:
            client = server.client()
            project = client.projects.create(title="bench", label_config=CONFIG).id
            folder = server.document_root / "bench"
            folder.mkdir()
            tasks = []
            for i in range(args.tasks):
                draw_sample(i, size=(640, 480))[0].save(folder / f"{i:05d}.jpg", quality=85)
                tasks.append({"data": {"image": server.local_files_url(folder / f"{i:05d}.jpg")}})
            ls_client.import_tasks(client, project, tasks)
            (work_path / "models").mkdir()
            YOLO("yolov5nu.yaml").save(str(work_path / "models" / "yolov5nu.pt"))
            settings = Settings.from_env(
                {}, model_root=str(work_path / "models"), model_path="yolov5nu.pt", model_dir=str(work_path / "state"),
                imgsz=str(args.imgsz), local_files_document_root=str(server.document_root))
            backend = build_backend(settings, start=False)
            backend.store.start(background=False)
            predictor = InProcessPredictor(backend, project, CONFIG)
            for run in ("first", "second"):
                started = time.perf_counter()
                outcome = prelabel(client, project, predictor, args.chunk_size, args.workers, progress=False)
                seconds = time.perf_counter() - started
                print(f"{run} run: {seconds:.1f} s, {outcome.done / seconds if outcome.done else 0:.1f} tasks/s; "
                      f"{outcome.summary()}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
