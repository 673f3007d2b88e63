"""Trust III (issue 22): paths a label config or a label names stay where they belong: a control's
``model_path`` under MODEL_ROOT in training as in serving; ``export-yolo``'s class folders inside ``-o``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.shapes_project import export_file, write_project
from yolo_backend.config import Settings
from yolo_backend.core.registry import Registry
from yolo_backend.core.state import RunRecord
from yolo_backend.training.train import run_once


# -- 1. training confines a label config's model_path to MODEL_ROOT ------------------------------------------
class _Unpickled:
    """Unpickling this creates ``marker``: proof that someone loaded the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.marker),)


def _config(model_path: str) -> str:
    return ('<View><Image name="image" value="$image"/>'
            f'<RectangleLabels name="label" toName="image" model_path="{model_path}">'
            '<Label value="square"/><Label value="circle"/></RectangleLabels></View>')


@pytest.mark.parametrize("how", ["absolute", "dot-dot"])
def test_training_refuses_a_model_path_outside_model_root_and_never_loads_it(tmp_path: Path, how: str) -> None:
    import torch

    root = tmp_path / "root"
    root.mkdir()
    marker = tmp_path / "unpickled"
    elsewhere = tmp_path / "elsewhere.pt"  # readable by the training process, outside MODEL_ROOT
    torch.save({"model": _Unpickled(marker)}, elsewhere)
    model_path = str(elsewhere) if how == "absolute" else "../elsewhere.pt"
    tasks = write_project(tmp_path / "docroot", 3, size=(64, 64), max_shapes=1)
    source = export_file(tmp_path / "export.json", tasks, _config(model_path))
    settings = Settings.from_env({}, model_root=str(root), model_dir=str(tmp_path / "state"),
                                 local_files_document_root=str(tmp_path / "docroot"), device="cpu")
    run = run_once(settings, "3", RunRecord("3"), source)
    assert run.state.value == "failed", run
    assert "ModelPathRefused" in run.reason and model_path in run.reason and "MODEL_ROOT" in run.reason, run.reason
    assert not marker.exists(), "the checkpoint outside MODEL_ROOT was unpickled"
    assert Registry(settings.model_dir_path, "3").served() is None


@pytest.mark.parametrize("model_path", ["/abs", "../elsewhere.pt"])
def test_yolo_ls_refuses_a_model_path_the_service_would_refuse(tmp_path: Path, model_path: str,
                                                               monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """``yolo-ls int8`` and ``review`` default to MODEL_ROOT/MODEL_PATH: confined as the service confines it."""
    import torch

    from yolo_backend.cli import main

    root, marker = tmp_path / "root", tmp_path / "unpickled"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere.pt"
    torch.save({"model": _Unpickled(marker)}, elsewhere)
    monkeypatch.setenv("MODEL_ROOT", str(root))
    monkeypatch.setenv("MODEL_PATH", str(elsewhere) if model_path == "/abs" else model_path)
    assert main(["int8", str(tmp_path)]) == 2
    assert "MODEL_ROOT" in capsys.readouterr().err and not marker.exists()


# -- 5. export-yolo --task classify: class folders named as training names them ------------------------------
def test_export_yolo_class_folders_stay_inside_the_output_folder(tmp_path: Path) -> None:
    from tests.support.tiny_classify import choices_config, choices_result
    from tests.support.tiny_classify import write_project as write_classes
    from yolo_backend.cli import main
    from yolo_backend.formats.yolo_folder import class_folder_name

    labels = ("../evil", "a/b", "../../escaped")
    tasks = write_classes(tmp_path / "docroot", 6)
    for index, task in enumerate(tasks):
        task["annotations"][0]["result"] = [choices_result([labels[index % len(labels)]])]
        task.pop("_truth")
    source, config = tmp_path / "export.json", tmp_path / "config.xml"
    source.write_text(json.dumps(tasks))
    config.write_text(choices_config(labels=labels))
    out = tmp_path / "work" / "exported"
    assert main(["export-yolo", "--from-file", str(source), "--label-config", str(config), "--task", "classify",
                 "-o", str(out), "--document-root", str(tmp_path / "docroot"), "--no-progress"]) == 0
    images = sorted(p for p in (tmp_path / "work").rglob("*.png"))
    assert len(images) == 6
    for image in images:
        split, folder, _ = image.relative_to(out).parts  # raises if it is not <out>/<split>/<class>/<image>
        assert split in ("train", "val", "test") and folder in {class_folder_name(label) for label in labels}
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "work" / "evil").exists()
