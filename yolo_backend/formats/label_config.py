"""What a project's label config asks this backend to predict.

Parsed with ``label-studio-sdk``'s ``LabelInterface``. Every control of a registered kind
(``kinds.CONTROLS``: ``RectangleLabels``, ``PolygonLabels``) bound to an ``Image`` becomes a
``ControlSpec`` (``controls``, a bottom module the kinds import too); the model's class names
are matched to its labels by ``controls.map_classes``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Mapping

from label_studio_sdk.label_interface import LabelInterface

from ..errors import LabelConfigError
from ..kinds import CONTROLS, oriented_boxes, video_boxes
from .controls import ControlSpec, map_classes

log = logging.getLogger(__name__)

SUPPORTED_CONTROLS = CONTROLS  # control tag -> result type, one entry per registered kind
VIDEO_CONTROLS = {video_boxes.KIND.CONTROL: video_boxes.KIND.RESULT_TYPE}  # on a <Video>: labels from its <Labels>
OBB_ATTRIBUTE = oriented_boxes.FORCE_ATTRIBUTE  # <RectangleLabels model_obb="true">: oriented boxes only
TRUE = ("true", "True", "1")


def _attr(tag: object, name: str) -> str | None:
    attrs = getattr(tag, "attr", None) or {}
    value = attrs.get(name)
    if value is None:
        # LabelInterface lower-cases some attribute names.
        value = attrs.get(name.lower())
    return None if value is None else str(value)


def _threshold(control: object) -> float | None:
    raw = _attr(control, "model_score_threshold")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        name = getattr(control, "name", "?")
        raise LabelConfigError(f'model_score_threshold="{raw}" on control {name!r} is not a number') from None
    if not 0 <= value <= 1:
        raise LabelConfigError(f"model_score_threshold on {control.name!r} must be between 0 and 1, got {value}")  # type: ignore[attr-defined]
    return value


def _options(tag: object) -> tuple[tuple[str, str], ...]:
    """The attributes a kind may read: ``model_*`` ones (model_index, model_point_size, ...) and ``choice``."""
    attrs = getattr(tag, "attr", None) or {}
    return tuple(sorted((str(k), str(v)) for k, v in attrs.items() if str(k).startswith("model_") or k == "choice"))


def _label_options(control: object) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """Every label in control order (keypoints default a label's index to its position), with its attributes."""
    return tuple((str(label), _options(tag)) for label, tag in (getattr(control, "labels_attrs", None) or {}).items())


def _predicted_values(control: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    pairs = []
    for label, tag in (getattr(control, "labels_attrs", None) or {}).items():
        raw = _attr(tag, "predicted_values")
        if raw:
            names = tuple(n.strip() for n in raw.split(",") if n.strip())
            pairs.append((label, names))
    return tuple(pairs)


@functools.lru_cache(maxsize=64)
def parse(config_xml: str) -> tuple[ControlSpec, ...]:
    """Every control this backend can predict for, or a LabelConfigError naming what is missing.

    Cached: Label Studio sends the same config with every request.
    """
    if not config_xml or not config_xml.strip():
        raise LabelConfigError("the label config is empty")
    try:
        interface = LabelInterface(config_xml)
    except Exception as exc:  # the SDK raises many kinds on bad XML
        raise LabelConfigError(f"the label config could not be parsed: {exc}") from None
    specs: list[ControlSpec] = []
    seen_kinds: list[str] = []
    for control in interface.controls:
        seen_kinds.append(f"<{control.tag} name={control.name!r}>")
        kind = SUPPORTED_CONTROLS.get(control.tag) or VIDEO_CONTROLS.get(control.tag)
        if kind is None or _attr(control, "model_skip") in TRUE:
            continue
        media = "video" if control.tag in VIDEO_CONTROLS else "image"
        for to_name in control.to_name or []:
            try:
                obj = interface.get_object(to_name)
            except Exception:  # the SDK raises a bare Exception when toName names no tag
                obj = None
            if obj is None or obj.tag != media.capitalize():
                continue
            labels = _video_labels(interface, to_name) if media == "video" else (control,)
            value = obj.value or ""
            specs.append(
                ControlSpec(
                    from_name=control.name,
                    to_name=to_name,
                    kind=kind,
                    data_key=value.lstrip("$"),
                    labels=tuple(label for tag in labels for label in tag.labels or ()),
                    predicted_values=tuple(pair for tag in labels for pair in _predicted_values(tag)),
                    threshold=_threshold(control),
                    model_path=_attr(control, "model_path") or None,
                    task="obb" if _attr(control, OBB_ATTRIBUTE) in TRUE else None,
                    options=_options(control),
                    label_options=tuple(pair for tag in labels for pair in _label_options(tag)),
                    media=media,
                    smart=_attr(control, "smart") in TRUE,
                )
            )
    specs = [_with_box_control(spec, specs) for spec in specs]
    if not specs:
        found = ", ".join(seen_kinds) or "no control tags"
        raise LabelConfigError(
            f"nothing to predict: this backend needs a {' or '.join(f'<{tag}>' for tag in CONTROLS)} control "
            f"with toName pointing at an <Image> tag, or a <VideoRectangle> on a <Video> with its <Labels> "
            f'(found {found}). Example: <Image name="image" '
            'value="$image"/><RectangleLabels name="label" toName="image"><Label value="Car"/></RectangleLabels>'
        )
    return tuple(specs)


def _video_labels(interface: LabelInterface, video: str) -> tuple[object, ...]:
    """The ``<Labels>`` controls on a video: a ``<VideoRectangle>`` takes its labels from them."""
    return tuple(c for c in interface.controls if c.tag == "Labels" and video in (c.to_name or []))


def _with_box_control(spec: ControlSpec, specs: list[ControlSpec]) -> ControlSpec:
    """``spec`` naming the first other <RectangleLabels> control on its image served by the same checkpoint."""
    for other in specs:
        if other is not spec and other.kind == "rectanglelabels" and other.to_name == spec.to_name \
                and other.model_path == spec.model_path:
            return dataclasses.replace(spec, box_control=other.from_name)
    return spec


def mismatch_hint(spec: ControlSpec, class_names: Mapping[int, str], mapped: Mapping[int, str] | None = None
                  ) -> str | None:
    """A log line telling how to fix a control whose labels match none of the model's classes (``mapped``)."""
    if mapped if mapped is not None else map_classes(spec, class_names):
        return None
    sample = ", ".join(list(class_names.values())[:8])
    return (
        f"no label of control {spec.from_name!r} ({', '.join(spec.labels[:8]) or 'no labels'}) matches a class of the "
        f"model ({sample}{', ...' if len(class_names) > 8 else ''}): rename the labels, or add "
        f'predicted_values="<model class>" to a <Label>, or train the model on this project'
    )
