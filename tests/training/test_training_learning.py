"""Learning for real: 40 annotated shape tasks in Label Studio's format -> a promoted model that detects.

The whole loop runs as in production, minus the Label Studio API call: the trainer
queues the run, a child process trains it, the registry bumps the version, and the
Flask app serves the new version on ``/predict``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.shapes_project import LABEL_CONFIG, MAPPED_CONFIG, export_file, write_project
from tests.support.synthetic import draw_sample
from tests.support.training_runs import wait_finished
from yolo_backend.config import Settings

PROJECT = "7"


@pytest.fixture(scope="module")
def shapes_base_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODEL_ROOT with a base pretrained on other classes ("block", "ring"): the run must learn the labels.

    Its class head is reset by the run (other classes), so which output means square and which
    circle comes only from the project's annotations; the backbone makes 40 tasks enough.
    """
    from ultralytics import YOLO

    from tests.support.trained_model import trained_shapes_model

    root = tmp_path_factory.mktemp("shapes-base")
    model = YOLO(str(trained_shapes_model()))
    model.model.names = {0: "block", 1: "ring"}
    model.save(str(root / "yolov5nu.pt"))
    assert YOLO(str(root / "yolov5nu.pt")).names == {0: "block", 1: "ring"}
    return root


def _settings(tmp_path: Path, model_root: Path, doc_root: Path, **overrides: object) -> Settings:
    return Settings.from_env({}, model_root=str(model_root), model_path="yolov5nu.pt",
                             model_dir=str(tmp_path / "state"), local_files_document_root=str(doc_root),
                             device="cpu", imgsz=160, model_score_threshold=0.25, train_imgsz=160,
                             train_epochs=30, train_batch=8, train_patience=30, train_min_images=10, **overrides)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.slow
def test_a_run_learns_promotes_and_serves(tmp_path: Path, shapes_base_root: Path) -> None:
    from yolo_backend.app import build_backend
    from yolo_backend.training import ProjectTrainer
    from yolo_backend.web.http_api import create_app

    doc_root = tmp_path / "docroot"
    tasks = write_project(doc_root, 40)
    # INT8 on: the run also makes and judges the int8 copy (int8.py); the same run, no second training
    settings = _settings(tmp_path, shapes_base_root, doc_root, int8=True)
    trainer = ProjectTrainer(settings, source=export_file(tmp_path / "export.json", tasks))

    started = time.monotonic()
    assert trainer.handle("START_TRAINING", PROJECT)["status"] == "queued"
    status = wait_finished(trainer, PROJECT)
    seconds = time.monotonic() - started
    run = status["last_run"]
    assert run["state"] == "promoted", run
    assert run["version"] == status["served_version"] == f"p{PROJECT}-v1"

    # Before: the base, whose classes ("block", "ring") match no label, scored on the same holdout by the run.
    before, after = run["metrics"]["served"], run["metrics"]["candidate"]
    print(f"\nholdout ({run['metrics']['holdout_images']} images) mAP50 before {before['map50']:.3f} after "
          f"{after['map50']:.3f}; mAP50-95 before {before['map50_95']:.3f} after {after['map50_95']:.3f}; F1 before "
          f"{before['f1']:.3f} after {after['f1']:.3f}; thresholds {run['metrics']['thresholds']}; "
          f"run took {seconds:.0f} s")
    assert after["map50"] >= before["map50"] + 0.3, (before, after)

    # /predict on a fresh image: a box of the right class, IoU >= 0.5, under the new version.
    backend = build_backend(settings.replace(admin_open=True), trainer=trainer, start=False)  # reads /metrics
    backend.store.start(background=False)
    client = create_app(backend).test_client()
    img, shapes = draw_sample(99_999, size=(256, 256), max_shapes=1, min_side=48, max_side=96)
    img.save(doc_root / "fresh.jpg")
    answer = client.post("/predict", json={"tasks": [{"id": 1000, "data": {"image": "/data/local-files/?d=fresh.jpg"}}],
                                           "project": f"{PROJECT}.1700000000", "label_config": LABEL_CONFIG})
    assert answer.status_code == 200, answer.get_json()
    prediction = answer.get_json()["results"][0]
    assert prediction["model_version"] == f"p{PROJECT}-v1"
    truth = shapes[0]
    found = [r for r in prediction["result"] if r["value"]["rectanglelabels"] == [truth.label]]
    assert found, prediction
    best = max(found, key=lambda r: r["score"])["value"]
    box = (best["x"] * 2.56, best["y"] * 2.56, (best["x"] + best["width"]) * 2.56,
           (best["y"] + best["height"]) * 2.56)
    assert iou(box, truth.box) >= 0.5, (box, truth.box)

    versions = client.get(f"/versions?project={PROJECT}").get_json()
    assert versions["versions"] == [f"p{PROJECT}-v1"]
    assert versions["details"][0]["metrics"]["candidate"]["map50"] == after["map50"]
    # the gate's record: both models scored on the same holdout, the reason, and per-class thresholds
    served = run["metrics"]["served"]
    assert served["f1"] == 0.0 and after["f1"] >= served["f1"] + settings.promote_min_gain, run["metrics"]
    assert "better pre-labels" in run["reason"] and run["metrics"]["holdout_images"] >= settings.train_min_holdout
    assert set(versions["details"][0]["thresholds"]) <= {"square", "circle"} and versions["details"][0]["thresholds"]
    assert versions["runs"][-1]["state"] == "promoted"
    assert client.get(f"/training/status?project={PROJECT}").get_json()["served_version"] == f"p{PROJECT}-v1"
    assert b'yolo_backend_training_served_version{project="7"} 1.0' in client.get("/metrics").data

    # int8: judged against fp32 on the same holdout, both at the thresholds the version serves with (not re-tuned
    # on int8's own boxes); it serves exactly when its gate passed
    gate = run["metrics"]["int8"]
    assert gate["fp32"]["mAP50-95"] == round(after["map50_95"], 4), gate
    assert gate["thresholds"] == run["metrics"]["thresholds"] == versions["details"][0]["thresholds"], gate
    assert set(gate["int8"]) == {"mAP50-95", "f1"} and "INT8_MAX_DROP=0.01" in gate["reason"], gate
    drops = [gate["fp32"][k] - gate["int8"][k] for k in ("mAP50-95", "f1")]
    assert gate["ok"] is (max(drops) <= 0.01 + 1e-9), gate
    served = backend.store.serve(PROJECT, "label").detector
    assert served.runtime == ("onnx-int8" if gate["ok"] else "onnx"), (served.runtime, gate)
    print(f"int8 gate: {gate['reason']}")




@pytest.mark.slow
def test_a_worse_candidate_is_not_promoted_over_a_base_serving_through_predicted_values(tmp_path: Path) -> None:
    """Fault 1: the first run was promoted without any comparison, although the base gave good pre-labels.

    The base (the shapes model) serves this project through ``predicted_values``; one epoch at
    64 px from a fresh class head gives worse pre-labels, so the base must stay.
    """
    import shutil

    from tests.support.trained_model import trained_shapes_model
    from yolo_backend.training import ProjectTrainer

    root = tmp_path / "models"
    root.mkdir()
    shutil.copyfile(trained_shapes_model(), root / "shapes.pt")
    doc_root = tmp_path / "docroot"
    tasks = write_project(doc_root, 16)
    for task in tasks:  # the project's own label names
        for region in task["annotations"][0]["result"]:
            value = region["value"]
            value["rectanglelabels"] = [{"square": "box", "circle": "disc"}[value["rectanglelabels"][0]]]
    settings = Settings.from_env({}, model_root=str(root), model_path="shapes.pt", model_dir=str(tmp_path / "state"),
                                 local_files_document_root=str(doc_root), device="cpu", train_imgsz=64,
                                 train_epochs=1, train_batch=8, train_min_images=10)
    trainer = ProjectTrainer(settings, source=export_file(tmp_path / "export.json", tasks, MAPPED_CONFIG))
    assert trainer.handle("START_TRAINING", "8")["status"] == "queued"
    status = wait_finished(trainer, "8")
    run = status["last_run"]
    served, candidate = run["metrics"]["served"], run["metrics"]["candidate"]
    print(f"\nholdout {run['metrics']['holdout_images']} images: served F1 {served['f1']:.3f} mAP50-95 "
          f"{served['map50_95']:.3f}, candidate F1 {candidate['f1']:.3f} mAP50-95 {candidate['map50_95']:.3f}")
    assert run["state"] == "rejected", run
    # the base was scored through the mapping (unmapped it would score 0); 0.8 on 5 images on an Intel
    # Xeon, above 0.8 on an AMD EPYC: training and scoring differ a little between CPUs
    assert served["version"].startswith("shapes-") and served["f1"] >= 0.6, served
    assert status["served_version"] is None and trainer.lookup("8") == ()
    assert "stays" in run["reason"] and "F1" in run["reason"]
