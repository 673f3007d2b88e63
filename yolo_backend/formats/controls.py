"""One control of a label config, and how a model's class names map to its labels.

A bottom module: the label config (``label_config.parse``) makes ``ControlSpec``s from the XML
with the kinds registry, and the kinds read them back (``Kind.class_labels``), so neither
imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class ControlSpec:
    """One control this backend predicts for, with its per-control options."""

    from_name: str
    to_name: str
    kind: str  # its result type: rectanglelabels | polygonlabels (kinds.RESULT_TYPES)
    data_key: str = "image"  # task["data"][data_key] holds the image URL ($image in Label Studio's templates)
    labels: tuple[str, ...] = ()
    predicted_values: tuple[tuple[str, tuple[str, ...]], ...] = ()  # label -> model class names
    threshold: float | None = None  # model_score_threshold, None = the service default
    model_path: str | None = None  # model_path, relative to MODEL_ROOT; None = MODEL_PATH
    task: str | None = None  # a task the control demands of its checkpoint: "obb" for model_obb="true"
    options: tuple[tuple[str, str], ...] = ()  # the control's model_* attributes and choice="multiple"
    label_options: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # label -> its model_* attributes
    box_control: str | None = None  # a <RectangleLabels> on the same image and checkpoint (keypoints' instances)
    media: str = "image"  # the object tag's kind: "image", or "video" (<VideoRectangle> on a <Video>)
    smart: bool = False  # smart="true": the annotator's smart tool (its point or box asks the backend for an object)

    @property
    def click_tool(self) -> bool:
        """A smart keypoint control: its points are clicks asking for an object, not objects to pre-label or train."""
        return self.smart and self.kind == "keypointlabels"

    def option(self, name: str, default: str | None = None) -> str | None:
        return dict(self.options).get(name, default)


def map_classes(spec: ControlSpec, class_names: Mapping[int, str]) -> dict[int, str]:
    """Model class id -> label of ``spec``.

    A label's ``predicted_values`` wins, then the exact label name, then a
    case-insensitive match. Classes matching no label are dropped.
    """
    by_predicted = {name: label for label, names in spec.predicted_values for name in names}
    exact = {label: label for label in spec.labels}
    folded = {label.casefold(): label for label in spec.labels}
    mapping: dict[int, str] = {}
    for class_id, name in class_names.items():
        label = by_predicted.get(name) or exact.get(name) or folded.get(name.casefold())
        if label is not None:
            mapping[int(class_id)] = label
    return mapping
