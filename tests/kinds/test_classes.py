"""Classes: ``<Choices>`` on an image served by a classify checkpoint, trained and exported as class folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support import tiny_classify
from tests.support.tiny_classify import NAMES, choices_config, choices_result, class_of, draw, write_project
from tests.support.training_runs import train_once
from yolo_backend import kinds
from yolo_backend.cli import main
from yolo_backend.config import Settings
from yolo_backend.formats import convert, label_config
from yolo_backend.formats.controls import ControlSpec
from yolo_backend.formats.convert import Detection, Target
from yolo_backend.kinds import classes

LABELS = dict(enumerate(NAMES))  # model class id -> label, every class mapped


def dets(*scores: float) -> list[Detection]:
    """Whole-image detections as the detector gives a classify result: one per class, best first."""
    found = [Detection(cls, score, (0.0, 0.0, 100.0, 80.0)) for cls, score in enumerate(scores)]
    return sorted(found, key=lambda d: -d.score)


def target(labels: dict[int, str] = LABELS, threshold: float = 0.5, multiple: bool = False,
           per_class: dict[int, float] | None = None) -> Target:
    spec = ControlSpec("class", "image", "choices", options=(("choice", "multiple"),) if multiple else ())
    return Target(spec, labels=labels, threshold=threshold, class_thresholds=per_class or {}, task="classify")


# -- results ---------------------------------------------------------------------------------------
def test_single_choice_is_one_region_with_the_best_class() -> None:
    regions = kinds.detections_to_regions(dets(0.1, 0.85, 0.05), [target()], 100, 80)
    assert len(regions) == 1
    region = regions[0]
    assert region["type"] == "choices" and region["from_name"] == "class" and region["to_name"] == "image"
    assert region["value"] == {"choices": ["square"]} and region["score"] == 0.85


def test_single_choice_never_puts_a_lower_class_in_place_of_an_unmapped_or_weak_best() -> None:
    assert classes.KIND.results(dets(0.1, 0.85, 0.05), target({0: "circle", 2: "triangle"}), 100, 80) == []
    assert classes.KIND.results(dets(0.3, 0.45, 0.25), target(), 100, 80) == []  # best below 0.5
    low = classes.KIND.results(dets(0.3, 0.45, 0.25), target(threshold=0.4), 100, 80)
    assert [r["value"]["choices"] for r in low] == [["square"]]


def test_multiple_choices_give_every_class_passing_its_threshold_in_one_region() -> None:
    regions = classes.KIND.results(dets(0.6, 0.32, 0.08), target(threshold=0.3, multiple=True), 100, 80)
    assert len(regions) == 1 and regions[0]["value"]["choices"] == ["circle", "square"]
    assert regions[0]["score"] == 0.6
    strict = classes.KIND.results(dets(0.6, 0.32, 0.08), target(threshold=0.3, multiple=True, per_class={1: 0.4}),
                                  100, 80)
    assert strict[0]["value"]["choices"] == ["circle"]
    assert classes.KIND.results(dets(0.2, 0.2, 0.6), target(threshold=0.7, multiple=True), 100, 80) == []
    unmapped_best = classes.KIND.results(dets(0.6, 0.32, 0.08), target({1: "square"}, 0.3, multiple=True), 100, 80)
    assert unmapped_best[0]["value"]["choices"] == ["square"] and unmapped_best[0]["score"] == 0.32


def test_classes_map_to_choices_by_predicted_values_exact_and_case_folded() -> None:
    config = choices_config(multiple=True, labels=())
    config = config.replace("</Choices>", '<Choice value="Round" predicted_values="circle"/>'
                                          '<Choice value="SQUARE"/><Choice value="star"/></Choices>')
    spec = label_config.parse(config)[0]
    assert spec.kind == "choices" and classes.is_multiple(spec.options)
    mapping = classes.KIND.class_labels(spec, LABELS)
    assert mapping == {0: "Round", 1: "SQUARE"}
    regions = classes.KIND.results(dets(0.5, 0.45, 0.05), target(mapping, 0.4, multiple=True), 100, 80)
    assert regions[0]["value"]["choices"] == ["Round", "SQUARE"]


def test_choices_kind_is_registered_and_a_detect_checkpoint_is_a_mismatch_naming_the_fix() -> None:
    assert kinds.for_control("Choices") is classes.KIND and kinds.for_result("choices", "classify") is classes.KIND
    assert "classify" in kinds.SERVING_TASKS
    with pytest.raises(kinds.KindMismatch, match=r"'detect' checkpoint.*classify checkpoint"):
        kinds.serving_kind("choices", "detect", None, "class")


# -- label rows, import, holdout geometry -----------------------------------------------------------
def test_label_rows_are_class_indices_of_this_controls_choices() -> None:
    spec = label_config.parse(choices_config(multiple=True))[0]
    ids = {name: index for index, name in enumerate(NAMES)}
    other = {**choices_result(["circle"]), "from_name": "other"}
    box = {"from_name": "label", "to_name": "image", "type": "rectanglelabels",
           "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["circle"]}}
    annotation = {"result": [choices_result(["triangle", "square", "star", "triangle"]), other, box]}
    assert kinds.annotation_lines(annotation, ids, spec.from_name, spec.to_name, "classify", spec) == ["2", "1"]
    assert kinds.annotation_lines({"result": [other]}, ids, spec=spec, task="classify") == []
    assert kinds.region_line(choices_result(["square"]), ids) is None  # no control: never in an object dataset


def test_import_and_label_rows_round_trip() -> None:
    place = convert.Place("class", "image", (120, 90), "seed")
    regions = classes.KIND.import_regions(["1", "0", "1"], LABELS, place)
    assert len(regions) == 1
    region = regions[0]
    assert region["type"] == "choices" and region["value"] == {"choices": ["square", "circle"]}
    assert "score" not in region and region["from_name"] == "class" and region["to_name"] == "image"
    spec = label_config.parse(choices_config(multiple=True))[0]
    assert classes.KIND.label_rows(regions, {n: i for i, n in LABELS.items()}, spec) == ["1", "0"]
    assert classes.KIND.import_regions([], LABELS, place) == []
    with pytest.raises(ValueError, match="class 7 has no name"):
        classes.KIND.import_regions(["7"], LABELS, place)


def test_truth_is_the_whole_image_and_every_prediction_overlaps_it() -> None:
    assert classes.KIND.truth("2", 120, 90) == (2, (0.0, 0.0, 120.0, 90.0), None)
    matrix = classes.KIND.overlap([((0, 0, 1, 1), None)] * 3, [((0, 0, 9, 9), None)] * 2)
    assert matrix.shape == (3, 2) and np.all(matrix == 1)
    assert classes.KIND.METRIC == "top-1" and classes.KIND.TRAIN_TASK == "classify"


# -- training dataset ------------------------------------------------------------------------------
def test_build_dataset_writes_one_class_folder_per_image(tmp_path: Path) -> None:
    from yolo_backend.training.dataset import build_dataset

    doc_root = tmp_path / "docs"
    tasks = write_project(doc_root, 12)
    settings = Settings.from_env({}, model_dir=str(tmp_path / "state"), local_files_document_root=str(doc_root))
    dataset = build_dataset(tmp_path / "ds", tasks, choices_config(), settings)
    assert dataset.task == "classify" and dataset.data_yaml == tmp_path / "ds" and dataset.labels == list(NAMES)
    assert {p.name for p in (tmp_path / "ds" / "train").iterdir()} == set(NAMES)  # every class folder, even empty
    chosen = {task["id"]: task["annotations"][0]["result"][0]["value"]["choices"] for task in tasks}
    for part, examples in (("train", dataset.train), ("val", dataset.val)):
        for example in examples:
            found = [p.parent.name for p in (tmp_path / "ds" / part).glob(f"*/task-{example.task_id}.jpg")]
            assert found == chosen[example.task_id], example
    assert dataset.holdout and all(not list((tmp_path / "ds").glob(f"*/*/task-{e.task_id}.jpg"))
                                   for e in dataset.holdout)


# -- choice="multiple": a softmax picks one class, so it is refused ---------------------------------
MULTIPLE_FIRST = ('<View><Image name="image" value="$image"/>'
                  '<Choices name="tags" toName="image" choice="multiple">'
                  + "".join(f'<Choice value="{n}"/>' for n in NAMES) + "</Choices>"
                  + choices_config().split('value="$image"/>', 1)[1])  # then the single-choice control "class"


def test_setup_refuses_multiple_choice_saying_why_and_what_to_use(tmp_path: Path) -> None:
    from model import YOLOBackend
    from tests.support.standin import standin_store
    from yolo_backend.web.http_api import create_app

    settings = Settings.from_env({}, model_root=str(tmp_path / "models"), model_dir=str(tmp_path / "state"))
    store, _ = standin_store(settings)
    backend = YOLOBackend(settings, store=store)
    try:
        client = create_app(backend).test_client()
        answer = client.post("/setup", json={"project": "4.1", "schema": choices_config(multiple=True)})
        assert answer.status_code == 400, answer.json
        text = answer.json["message"]
        assert 'choice="multiple"' in text and "softmax" in text and 'choice="single"' in text, text
        assert 'model_skip="true"' in text
        skipped = choices_config(multiple=True, extra='model_skip="true"').replace(
            "</View>", '<Choices name="class2" toName="image"><Choice value="circle"/></Choices></View>')
        assert client.post("/setup", json={"project": "4.1", "schema": skipped}).status_code == 200
        assert client.post("/setup", json={"project": "4.1", "schema": choices_config()}).status_code == 200
    finally:
        backend.close()


def test_training_passes_over_a_multiple_choice_control_and_writes_no_image_twice(tmp_path: Path) -> None:
    from yolo_backend.errors import LabelConfigError
    from yolo_backend.training.dataset import build_dataset, passed_over

    doc_root = tmp_path / "docs"
    tasks = write_project(doc_root, 12)
    for task in tasks:  # the multi-label control holds two tags per image, the single one its class
        task["annotations"][0]["result"].append(choices_result(["circle", "triangle"], from_name="tags"))
    settings = Settings.from_env({}, model_dir=str(tmp_path / "state"), local_files_document_root=str(doc_root))
    assert list(passed_over(MULTIPLE_FIRST)) == ["tags"]
    dataset = build_dataset(tmp_path / "ds", tasks, MULTIPLE_FIRST, settings)
    images = [p.name for p in (tmp_path / "ds").glob("*/*/task-*.jpg")]
    assert images and len(images) == len(set(images)), "an image sits in two class folders"
    chosen = {task["id"]: task["annotations"][0]["result"][0]["value"]["choices"] for task in tasks}
    assert all(e.lines == (str(NAMES.index(chosen[e.task_id][0])),) for e in dataset.train + dataset.val)
    with pytest.raises(LabelConfigError, match='choice="single"'):
        build_dataset(tmp_path / "ds2", tasks, choices_config(multiple=True), settings)
    assert not (tmp_path / "ds2").exists() or not list((tmp_path / "ds2").rglob("*.jpg"))


def test_a_run_on_a_multiple_choice_control_alone_is_not_started_with_the_reason(tmp_path: Path) -> None:
    from tests.support.shapes_project import export_file
    from yolo_backend.training import ProjectTrainer

    doc_root = tmp_path / "docs"
    tasks = write_project(doc_root, 12)
    settings = Settings.from_env({}, model_root=str(tmp_path / "models"), model_dir=str(tmp_path / "state"),
                                 local_files_document_root=str(doc_root), device="cpu", train_min_images=10)
    trainer = ProjectTrainer(settings, source=export_file(tmp_path / "export.json", tasks,
                                                          choices_config(multiple=True)))
    _, run, _ = train_once(trainer, "6")
    assert run["state"] == "not_started" and 'choice="single"' in run["reason"], run
    assert list(run["metrics"]["passed_over"]) == ["class"]


# -- predict parity with a real classify checkpoint -------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """The Flask app serving the tiny classify model (``cls.pt``, trained at 64 px); ``det.pt`` a detect one."""
    from ultralytics import YOLO

    from model import YOLOBackend
    from yolo_backend.web.http_api import create_app

    root = tmp_path_factory.mktemp("cls-root")
    shutil.copyfile(tiny_classify.tiny_classify_model(), root / "cls.pt")
    YOLO("yolov5nu.yaml").save(str(root / "det.pt"))
    docs = tmp_path_factory.mktemp("cls-docs")
    for seed in range(50_000, 50_010):
        draw(seed).save(docs / f"{seed}.png")
    settings = Settings.from_env({}, model_root=str(root), model_path="cls.pt", model_dir=str(docs.parent / "state"),
                                 local_files_document_root=str(docs), device="cpu")
    backend = YOLOBackend(settings)
    backend.store.start(background=False)
    yield create_app(backend).test_client(), docs, root
    backend.close()


def test_a_classify_checkpoint_is_served_at_its_own_size(served) -> None:
    from yolo_backend.serving.loader import load_detector

    detector = load_detector(served[2] / "cls.pt", device="cpu")
    assert detector.task == "classify" and detector.imgsz == 64


def test_predict_gives_ultralytics_top1_class_and_score(served) -> None:
    from ultralytics import YOLO

    client, docs, root = served
    config = choices_config(extra='model_score_threshold="0"')
    images = sorted(docs.glob("*.png"))
    tasks = [{"id": i, "data": {"image": f"/data/local-files/?d={path.name}"}} for i, path in enumerate(images)]
    answer = client.post("/predict", json={"tasks": tasks, "label_config": config, "project": "1.1"})
    assert answer.status_code == 200, answer.json
    model = YOLO(str(root / "cls.pt"))
    same = right = 0
    worst = 0.0
    for path, prediction in zip(images, answer.json["results"]):
        direct = model.predict(str(path), verbose=False)[0].probs  # Ultralytics defaults, the checkpoint's imgsz
        (region,) = prediction["result"]
        assert region["type"] == "choices" and region["value"]["choices"] == [NAMES[direct.top1]], path
        assert abs(region["score"] - float(direct.top1conf)) <= 1e-4, (region["score"], float(direct.top1conf))
        worst = max(worst, abs(region["score"] - float(direct.top1conf)))
        same += 1
        right += region["value"]["choices"] == [class_of(int(path.stem))]
    print(f"\nclassify parity: {same}/{len(images)} images same top-1 class and score (largest score "
          f"difference {worst:.1e}); "
          f"{right}/{len(images)} the drawn class")
    assert same == len(images) and right >= len(images) - 1


def test_multiple_choice_predict_gives_one_region_above_the_threshold(served) -> None:
    client, _, _ = served
    config = choices_config(multiple=True, extra='model_score_threshold="0.001"')
    task = {"id": 1, "data": {"image": "/data/local-files/?d=50001.png"}}
    answer = client.post("/predict", json={"tasks": [task], "label_config": config, "project": "2.1"})
    (region,) = answer.json["results"][0]["result"]
    assert region["value"]["choices"][0] == class_of(50_001) and len(region["value"]["choices"]) >= 1
    assert 0 < answer.json["results"][0]["score"] <= 1  # the task's doubt over every class (docs/uncertainty.md)


def test_a_detect_checkpoint_behind_choices_is_a_setup_error_naming_the_fix(served) -> None:
    client, _, _ = served
    config = choices_config(extra='model_path="det.pt"')
    client.post("/predict", json={"tasks": [], "label_config": config, "project": "3.1"})  # loads det.pt
    answer = client.post("/setup", json={"project": "3.1", "schema": config})
    assert answer.status_code == 400
    text = answer.json["message"]
    assert "'detect'" in text and "<Choices>" in text and "classify checkpoint" in text and "model_path" in text


# -- import-yolo / export-yolo ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def class_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ultralytics classify layout: train/<class>/*.png (9 images) and val/<class>/*.png (3)."""
    return tiny_classify.write_class_folders(tmp_path_factory.mktemp("cls-tree"), {"train": (0, 9), "val": (100, 3)})


def _import(root: Path, out: Path, *extra: str) -> int:
    return main(["import-yolo", str(root), "--type", "choices", "--as", "annotations", "--from-name", "class",
                 "--document-root", str(root), "-o", str(out), "--no-progress", *extra])


def test_import_yolo_reads_class_folders_into_choices(class_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "tasks.json"
    assert _import(class_tree, out) == 0
    tasks = json.loads(out.read_text())
    assert len(tasks) == 12
    for task in tasks:
        image = class_tree / task["data"]["image"].split("?d=")[1]
        (region,) = task["annotations"][0]["result"]
        assert region["type"] == "choices" and region["from_name"] == "class" and region["to_name"] == "image"
        assert region["value"]["choices"] == [image.parent.name] == [class_of(int(image.stem))]
    # --classes names them in another order; a folder missing from --classes is an error naming it
    assert _import(class_tree, out, "--classes", "triangle,square,circle") == 0
    assert all(t["annotations"][0]["result"][0]["value"]["choices"][0] in t["data"]["image"]
               for t in json.loads(out.read_text()))
    assert _import(class_tree, out, "--classes", "square,circle") == 2


def test_import_yolo_reads_a_flat_class_tree(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    for seed in range(6):
        (root / class_of(seed)).mkdir(parents=True, exist_ok=True)
        draw(seed).save(root / class_of(seed) / f"{seed}.png")
    out = tmp_path / "tasks.json"
    assert main(["import-yolo", str(root), "--type", "choices", "--from-name", "class", "--document-root",
                 str(root), "-o", str(out), "--no-progress"]) == 0
    tasks = json.loads(out.read_text())
    assert sorted(t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks) == sorted(
        class_of(seed) for seed in range(6))


def _export(tasks: list[dict], tmp_path: Path, root: Path, *extra: str) -> Path:
    source, config, out = tmp_path / "export.json", tmp_path / "config.xml", tmp_path / "exported"
    source.write_text(json.dumps(tasks))
    config.write_text(choices_config(multiple=True))
    assert main(["export-yolo", "--from-file", str(source), "--label-config", str(config), "--task", "classify",
                 "-o", str(out), "--document-root", str(root), "--no-progress", *extra]) == 0
    return out


def test_export_yolo_writes_class_folders_ultralytics_accepts(class_tree: Path, tmp_path: Path) -> None:
    from ultralytics.data.utils import check_cls_dataset

    imported = tmp_path / "tasks.json"
    assert _import(class_tree, imported) == 0
    tasks = json.loads(imported.read_text())
    for index, task in enumerate(tasks):
        task["id"] = index + 1
    tasks[0]["annotations"][0]["result"][0]["value"]["choices"] = ["circle", "square"]  # multiple: in both folders
    out = _export(tasks, tmp_path, class_tree, "--val", "0.25", "--min-val", "3")
    written = sorted(out.glob("*/*/*.png"))
    assert {p.parts[-3] for p in written} == {"train", "val"}
    first = Path(tasks[0]["data"]["image"].split("?d=")[1]).name
    assert sorted(p.parent.name for p in written if p.name == first) == ["circle", "square"]
    for path in written:
        if path.name != first:
            assert path.parent.name == class_of(int(path.stem))
    data = check_cls_dataset(str(out))
    assert data["nc"] == 3 and list(data["names"].values()) == list(NAMES)
    # back in: the exported folders import as the same choices
    again = tmp_path / "again.json"
    assert _import(out, again) == 0
    assert sum(len(t["annotations"][0]["result"]) for t in json.loads(again.read_text())) == len(written)


@pytest.mark.slow
def test_an_exported_class_tree_trains_with_ultralytics(class_tree: Path, tmp_path: Path) -> None:
    from ultralytics import YOLO

    imported = tmp_path / "tasks.json"
    assert _import(class_tree, imported) == 0
    tasks = [{**task, "id": index + 1} for index, task in enumerate(json.loads(imported.read_text()))]
    out = _export(tasks, tmp_path, class_tree, "--val", "0.25", "--min-val", "3")
    model = YOLO("yolo11n-cls.yaml")
    model.train(data=str(out), imgsz=64, epochs=1, batch=4, device="cpu", workers=0, plots=False, amp=False,
                verbose=False, project=str(tmp_path / "runs"), name="t", exist_ok=True)
    assert model.names == dict(enumerate(NAMES)) and (tmp_path / "runs" / "t" / "weights" / "last.pt").is_file()


# -- a real training run -----------------------------------------------------------------------------
# A choices project learned and promoted through a real Label Studio: tests/e2e/test_kind_classes.py.
@pytest.mark.slow
def test_a_base_knowing_one_choice_is_fine_tuned_into_one_knowing_all(tmp_path: Path) -> None:
    """The classify base serves only ``circle`` of this project's choices; the run learns ``box`` and ``tri`` too."""
    from tests.support.shapes_project import export_file
    from yolo_backend.training import ProjectTrainer

    doc_root, models = tmp_path / "docs", tmp_path / "models"
    models.mkdir()
    shutil.copyfile(tiny_classify.tiny_classify_model(), models / "cls.pt")
    renamed = {"circle": "circle", "square": "box", "triangle": "tri"}
    tasks = write_project(doc_root, 30)
    for task in tasks:
        value = task["annotations"][0]["result"][0]["value"]
        value["choices"] = [renamed[label] for label in value["choices"]]
    settings = Settings.from_env({}, model_root=str(models), model_path="cls.pt", model_dir=str(tmp_path / "state"),
                                 local_files_document_root=str(doc_root), device="cpu", train_imgsz=64,
                                 train_epochs=30, train_batch=8, train_patience=30, train_min_images=10)
    trainer = ProjectTrainer(settings, source=export_file(tmp_path / "export.json", tasks,
                                                          choices_config(labels=tuple(renamed.values()))))
    _, run, _ = train_once(trainer, "6")
    before, after = run["metrics"]["served"], run["metrics"]["candidate"]
    print(f"\nclassify fine-tune: holdout {run['metrics']['holdout_images']} images; top-1 before {before['top1']:.3f} "
          f"after {after['top1']:.3f}; F1 before {before['f1']:.3f} after {after['f1']:.3f}; {run['state']}: "
          f"{run['reason']}; from {run['metrics']['started_from']}, training {run['progress'].get('elapsed_s')} s")
    assert run["state"] == "promoted", run
    assert before["version"].startswith("cls-") and 0 < before["f1"] < after["f1"] and after["top1"] >= before["top1"]
