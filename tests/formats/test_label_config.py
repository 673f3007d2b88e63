"""Which controls get predictions, and how model classes map to labels."""

from __future__ import annotations

import pytest

from yolo_backend.errors import LabelConfigError
from yolo_backend.formats import label_config

CONFIG = """
<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.3">
    <Label value="Car" predicted_values="car,truck"/>
    <Label value="person"/>
    <Label value="Dog"/>
  </RectangleLabels>
  <PolygonLabels name="poly" toName="image" model_path="seg/best.pt">
    <Label value="Car"/>
  </PolygonLabels>
  <RectangleLabels name="skipped" toName="image" model_skip="true"><Label value="X"/></RectangleLabels>
  <Choices name="quality" toName="image" choice="multiple"><Choice value="ok" model_index="1"/></Choices>
  <TextArea name="note" toName="image"/>
</View>
"""

NAMES = {0: "person", 1: "car", 2: "truck", 3: "dog", 4: "cat"}


def test_every_supported_control_bound_to_an_image_is_found() -> None:
    specs = label_config.parse(CONFIG)
    assert [(s.from_name, s.kind) for s in specs] == [("label", "rectanglelabels"), ("poly", "polygonlabels"),
                                                      ("quality", "choices")]
    rect, poly, quality = specs
    assert rect.to_name == "image" and rect.data_key == "image"
    assert rect.threshold == 0.3 and rect.model_path is None
    assert poly.threshold is None and poly.model_path == "seg/best.pt"
    # what a kind reads of its control: model_* and choice attributes, per control and per label
    assert quality.option("choice") == "multiple" and dict(quality.label_options)["ok"] == (("model_index", "1"),)
    assert rect.options == (("model_score_threshold", "0.3"),) and rect.box_control is None


def test_predicted_values_then_exact_then_case_insensitive() -> None:
    rect = label_config.parse(CONFIG)[0]
    assert label_config.map_classes(rect, NAMES) == {0: "person", 1: "Car", 2: "Car", 3: "Dog"}


def test_several_images_each_get_their_control() -> None:
    xml = """<View><Image name="a" value="$left"/><Image name="b" value="$right"/>
      <RectangleLabels name="la" toName="a"><Label value="x"/></RectangleLabels>
      <RectangleLabels name="lb" toName="b"><Label value="y"/></RectangleLabels></View>"""
    specs = label_config.parse(xml)
    assert [(s.from_name, s.to_name, s.data_key) for s in specs] == [("la", "a", "left"), ("lb", "b", "right")]


@pytest.mark.parametrize("xml, fragment", [
    ('<View><Text name="t" value="$text"/><Labels name="l" toName="t"><Label value="a"/></Labels></View>',
     "RectangleLabels"),
    ('<View><Image name="i" value="$image"/><TextArea name="c" toName="i"/></View>', "Choices"),
    ("", "empty"),
    ("<View><Image", "could not be parsed"),
])
def test_nothing_to_predict_names_what_is_missing(xml: str, fragment: str) -> None:
    with pytest.raises(LabelConfigError, match=fragment):
        label_config.parse(xml)


def test_bad_threshold_is_refused_with_the_control_name() -> None:
    xml = ('<View><Image name="i" value="$image"/><RectangleLabels name="box" toName="i" '
           'model_score_threshold="high"><Label value="a"/></RectangleLabels></View>')
    with pytest.raises(LabelConfigError, match="box"):
        label_config.parse(xml)


def test_mismatch_hint_explains_the_fix() -> None:
    xml = '<View><Image name="i" value="$image"/><RectangleLabels name="r" toName="i"><Label value="Receipt"/>' \
          "</RectangleLabels></View>"
    spec = label_config.parse(xml)[0]
    hint = label_config.mismatch_hint(spec, NAMES)
    assert hint is not None and "predicted_values" in hint and "Receipt" in hint
    assert label_config.mismatch_hint(label_config.parse(CONFIG)[0], NAMES) is None
