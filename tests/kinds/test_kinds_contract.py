"""The kinds' explicit contract: one base class, its defaults, one registry, no hook found by name."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from yolo_backend import kinds
from yolo_backend.formats import convert
from yolo_backend.formats.controls import ControlSpec, map_classes
from yolo_backend.formats.convert import Detection, Target, YoloBox
from yolo_backend.kinds import boxes, classes, keypoints, oriented_boxes, outlines, video_boxes
from yolo_backend.kinds.base import Kind, WholeImageKind

PACKAGE = Path(__file__).resolve().parents[2] / "yolo_backend"
SPEC = ControlSpec("label", "image", "rectanglelabels", labels=("car", "person"),
                   predicted_values=(("car", ("truck",)),))
HOOKS = {name for name, member in vars(Kind).items() if inspect.isfunction(member) and not name.startswith("_")}
NAMED = HOOKS | {"label_rows", "import_regions", "CONTROL", "RESULT_TYPE", "TASKS", "MEDIA"}


class Plain(Kind):
    """A kind that writes only the per-region conversions: every hook is the base's."""

    CONTROL = "PlainLabels"
    RESULT_TYPE = "plainlabels"
    TASKS = ("detect",)
    TRAIN_TASK = "detect"

    def to_value(self, det: Detection, width: int, height: int) -> dict[str, Any]:
        return {"x": det.box[0]}

    def to_line(self, region: dict[str, Any], class_id: int) -> str | None:
        return f"{class_id} 0.5 0.5 0.1 0.1"

    def from_yolo(self, label: YoloBox, width: int, height: int) -> dict[str, Any]:
        return {}


def test_a_kind_that_overrides_no_hook_gets_the_base_defaults() -> None:
    plain = Plain()
    dets = [Detection(0, 0.9, (10, 20, 30, 60)), Detection(1, 0.3, (0, 0, 5, 5)), Detection(2, 0.9, (1, 1, 2, 2))]
    assert plain.METRIC == "mAP50-95" and plain.MEDIA == "image"
    assert plain.refusal(SPEC) is None
    assert plain.train_classes(SPEC) == ["car", "person"] and plain.dataset_fields(SPEC) == {}
    names = {0: "truck", 1: "Person", 7: "dog"}
    assert plain.class_labels(SPEC, names) == map_classes(SPEC, names) == {0: "car", 1: "person"}
    assert plain.shown(dets, SPEC) == dets and plain.shape(dets[0]) is None
    # results: a region per detection whose class maps and whose score passes, in convert.region's envelope
    target = Target(ControlSpec("label", "image", "plainlabels"), {0: "car", 1: "person"}, threshold=0.5)
    (region,) = plain.results(dets, target, 100, 200)
    assert region == convert.region({"x": 10}, "car", result_type="plainlabels", from_name="label", to_name="image",
                                    size=(100, 200), region_id=convert.region_id("label", 0, dets[0].box), score=0.9)
    # holdout: a row's pixel box, a segment row's points as its shape, boxes compared by IoU
    assert plain.truth("1 0.5 0.5 0.2 0.4", 100, 50) == (1, pytest.approx((40, 15, 60, 35)), None)
    assert np.allclose(plain.truth("0 0.1 0.1 0.3 0.1 0.2 0.3", 10, 10)[2], ((1, 1), (3, 1), (2, 3)))
    ious = plain.overlap([((0, 0, 10, 10), None)], [((0, 0, 10, 10), None), ((5, 0, 15, 10), None)])
    assert ious.shape == (1, 2) and ious[0] == pytest.approx([1.0, 1 / 3])


def test_registered_kinds_inherit_what_they_do_not_override() -> None:
    assert type(boxes.KIND).truth is Kind.truth and type(boxes.KIND).overlap is Kind.overlap
    assert type(outlines.KIND).train_classes is Kind.train_classes and type(outlines.KIND).overlap is not Kind.overlap
    assert isinstance(oriented_boxes.KIND, boxes.Boxes) and type(oriented_boxes.KIND).to_line is not boxes.Boxes.to_line
    video = type(video_boxes.KIND)
    assert video.to_line is boxes.Boxes.to_line and video.TASKS == boxes.Boxes.TASKS and video.MEDIA == "video"


def test_every_registered_kind_is_a_kind_of_the_one_contract() -> None:
    assert tuple(kind for kind in kinds.REGISTRY if kind.MEDIA == "image") == kinds.KINDS
    assert kinds.REGISTRY[-1] is video_boxes.KIND and len(set(map(type, kinds.REGISTRY))) == len(kinds.REGISTRY)
    for kind in kinds.REGISTRY:
        assert isinstance(kind, Kind) and issubclass(type(kind), Kind)
        assert all(isinstance(getattr(kind, name), str) for name in ("CONTROL", "RESULT_TYPE", "TRAIN_TASK", "METRIC"))
        assert kind.TASKS and kind.TRAIN_TASK in kind.TASKS
    assert [kind for kind in kinds.REGISTRY if isinstance(kind, WholeImageKind)] == [keypoints.KIND, classes.KIND]
    with pytest.raises(TypeError, match="abstract"):  # the per-region conversions are not optional
        type("Half", (Kind,), {"CONTROL": "X", "RESULT_TYPE": "x", "TASKS": ("detect",), "TRAIN_TASK": "detect"})()


def test_no_module_finds_a_kind_hook_by_name() -> None:
    """Callers call the contract's methods: no ``getattr(kind, "truth", ...)`` a type checker cannot see."""
    assert {"results", "truth", "overlap", "train_classes", "dataset_fields", "refusal"} <= HOOKS
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2 \
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in NAMED:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, f"hooks looked up by name: {found}"


def test_where_kinds_share_a_control_the_task_picks_and_is_asked_only_then() -> None:
    def never() -> str:
        raise AssertionError("asked although only one kind has this result type")

    assert kinds.for_result("polygonlabels", never) is outlines.KIND
    assert kinds.for_result("rectanglelabels", lambda: "obb") is oriented_boxes.KIND
    assert kinds.for_result("rectanglelabels", lambda: None) is boxes.KIND  # no weights yet: the first, boxes
    assert kinds.for_control("RectangleLabels", "obb") is oriented_boxes.KIND


def test_a_target_holds_its_control_spec() -> None:
    spec = ControlSpec("kp", "image", "keypointlabels", options=(("model_point_size", "3"),), box_control="box")
    target = Target(spec, {0: "nose"}, threshold=0.4, class_thresholds={0: 0.2})
    assert target.spec is spec and target.spec.option("model_point_size") == "3"
    assert target.threshold_for(0) == 0.2 and target.threshold_for(1) == 0.4 and target.lowest_threshold == 0.2
    assert not {"from_name", "to_name", "kind", "options", "label_options", "box_control"} & set(vars(target))
