"""One region envelope (``convert.region``): the review's flags and video tracks are wrapped by it too.

``review.project.region`` and ``video.keyframes.video_region`` built their envelopes by hand;
they now call ``convert.region``. Each must give, key for key, the region it gave before.
"""

from __future__ import annotations

import json

from yolo_backend.formats import convert
from yolo_backend.formats.controls import ControlSpec
from yolo_backend.review import flags
from yolo_backend.review.project import Review, region
from yolo_backend.video import keyframes
from yolo_backend.video.frames import VideoInfo
from yolo_backend.video.tracking import TrackPoint


def test_a_review_flag_is_the_rectangle_it_was() -> None:
    spec = ControlSpec("label", "image", "rectanglelabels", labels=("cat", "dog"))
    review = Review("review-4fold-abc", spec, ["cat", "dog"])
    flag = flags.Flag("wrong_class", 0.2, (10.0, 20.5, 110.25, 80.0), 0, model_label=1, confidence=0.9, region=0)
    width, height = 640, 427
    described = flags.DESCRIPTION["wrong_class"]
    expected = {
        "id": "review-3", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
        "original_width": 640, "original_height": 427, "image_rotation": 0,
        "value": {"x": round(100 * 10.0 / width, 4), "y": round(100 * 20.5 / height, 4),
                  "width": round(100 * 100.25 / width, 4), "height": round(100 * 59.5 / height, 4),
                  "rotation": 0, "rectanglelabels": ["cat"]},
        "meta": {"text": [f"{described}: annotated cat, the model sees a dog (0.90); review score 0.20"]},
    }
    made = region(flag, 3, width, height, review)
    assert made == expected
    assert json.dumps(made) == json.dumps(expected)  # the same keys in the same order


def test_a_flag_past_the_edge_is_not_clipped() -> None:
    """As before: the flagged box as it is (the image-kind value would clip it to the picture)."""
    spec = ControlSpec("label", "image", "rectanglelabels", labels=("cat",))
    flag = flags.Flag("missed", 0.1, (-10.0, 0.0, 50.0, 120.0), 0, model_label=0, confidence=0.8)
    value = region(flag, 0, 100, 100, Review("v", spec, ["cat"]))["value"]
    assert (value["x"], value["width"], value["height"]) == (-10.0, 60.0, 120.0)


def test_a_video_track_is_the_region_it_was() -> None:
    info = VideoInfo(25.0, 50, 320, 240)
    points = [TrackPoint(frame, (10.0 + frame, 20.0, 60.0 + frame, 80.0), 0.5 + frame / 100, 0)
              for frame in range(1, 11)]
    sequence = keyframes.sequence(points, info, 1, 0.9)
    expected = {"id": "r1", "from_name": "box", "to_name": "video", "type": "videorectangle",
                "origin": "prediction", "score": round(float(sum(p.score for p in points) / len(points)), 4),
                "value": {"framesCount": 50, "duration": 2.0, "sequence": sequence, "labels": ["Car"]}}
    made = keyframes.video_region(points, "Car", info, from_name="box", to_name="video", region_id="r1")
    assert made == expected
    assert list(made["value"]) == list(expected["value"])  # framesCount, duration, sequence, labels


def test_the_envelope_of_an_image_region_is_unchanged() -> None:
    made = convert.region({"x": 1.0}, "cat", result_type="rectanglelabels", from_name="f", to_name="t",
                          size=(10, 20), region_id="i", score=0.123456)
    assert json.dumps(made) == json.dumps({
        "id": "i", "from_name": "f", "to_name": "t", "type": "rectanglelabels", "original_width": 10,
        "original_height": 20, "image_rotation": 0, "value": {"x": 1.0, "rectanglelabels": ["cat"]},
        "score": 0.1235})
