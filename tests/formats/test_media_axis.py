"""Video has one home: a control's media is looked up in a table per layer, never branched on by name.

``formats.media_axis`` names the rows (image, video); serving partitions its controls by them,
training builds, sizes, counts and predicts by ``training.dataset.BUILDERS``, the export writes
by ``formats.yolo_export.WRITERS``, and ``yolo-ls`` fetches and chunks by the row.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from yolo_backend.cli import _prelabel_chunk
from yolo_backend.config import Settings
from yolo_backend.formats import label_config, media_axis, yolo_export
from yolo_backend.training import dataset as training_dataset
from yolo_backend.training.examples import Dataset, Example, carve_val
from yolo_backend.training.holdout import predict_holdout
from yolo_backend.training.video_scoring import predict_tracks

ROOT = Path(__file__).resolve().parents[2] / "yolo_backend"
IMAGE_CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image"><Label value="cat"/></RectangleLabels></View>"""
BOTH_CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image"><Label value="cat"/></RectangleLabels>
<Video name="video" value="$video"/><Labels name="kind" toName="video"><Label value="car"/></Labels>
<VideoRectangle name="box" toName="video"/></View>"""
# the places that once branched on spec.media == "video" (issue 23)
CONSULTERS = ("serving/backend.py", "training/dataset.py", "training/train.py", "training/fitting.py",
              "training/quantize.py", "formats/yolo_export.py", "cli.py")


def test_controls_fall_under_their_media_in_config_order() -> None:
    on = media_axis.by_media(label_config.parse(BOTH_CONFIG))
    assert [s.from_name for s in on[media_axis.IMAGE]] == ["label"]
    assert [s.from_name for s in on[media_axis.VIDEO]] == ["box"]
    assert media_axis.by_media(label_config.parse(IMAGE_CONFIG))[media_axis.VIDEO] == []  # every row present
    assert media_axis.of(None) is media_axis.IMAGE  # an export without a label config: images


def test_every_layer_has_a_row_for_every_media() -> None:
    rows = set(media_axis.AXIS.values())
    assert set(training_dataset.BUILDERS) == rows and set(yolo_export.WRITERS) == rows


def test_a_run_predicts_its_holdout_as_its_media_is_served() -> None:
    def of(media: str) -> training_dataset.Builder:
        return training_dataset.for_dataset(Dataset(Path("data.yaml"), [], [], [], [], media=media))

    assert of("image").predict is predict_holdout and of("video").predict is predict_tracks
    assert of("image").counts(Dataset(Path("d"), [], [], [], [])) == {}
    frames = [Example(task, Path("f"), (), frame) for task in (1, 2) for frame in (1, 5)]
    assert of("video").counts(Dataset(Path("d"), [], frames[:2], [], frames[2:], media="video")) == \
        {"train_videos": 1, "holdout_videos": 1}


def test_the_size_a_run_needs_is_said_per_media() -> None:
    settings = Settings.from_env({}, train_min_images=10, train_min_holdout=5)
    few = [Example(i, Path("f"), ()) for i in range(4)]
    image = training_dataset.BUILDERS[media_axis.IMAGE].too_small(Dataset(Path("d"), [], few, few, []), settings)
    assert image == "need 2 more labeled images (8 of 10: TRAIN_MIN_IMAGES=10, TRAIN_MIN_HOLDOUT=5 held out " \
                    "+ 2 to train)"
    frames = [Example(1, Path("f"), (), n) for n in range(12)]
    video = training_dataset.BUILDERS[media_axis.VIDEO].too_small(
        Dataset(Path("d"), [], frames, [], [], media="video"), settings)
    assert video is not None and video.startswith("need another annotated video: the holdout is whole videos")


@pytest.mark.parametrize(("config", "chunk"), [(IMAGE_CONFIG, 50), (BOTH_CONFIG, 1), ("<View", 50)])
def test_prelabel_stores_a_video_as_soon_as_it_is_tracked(config: str, chunk: int) -> None:
    assert _prelabel_chunk(config) == chunk


def test_a_video_s_val_is_carved_by_the_images_rule_in_whole_videos() -> None:
    """One val rule (``carve_val``): about 15 % of the frames, whole videos, a training video always left."""
    frames = [Example(video, Path("f"), (), n, content=f"video-{video}") for video in range(8) for n in range(10)]
    fit, val = carve_val(frames)
    assert {e.task_id for e in fit}.isdisjoint({e.task_id for e in val}) and fit
    assert 12 <= len(val) <= 20 and len(val) % 10 == 0  # round(0.15 * 80) frames, taken as whole videos
    one = [e for e in frames if e.task_id == 0]
    assert carve_val(one) == (one, one)  # one video: Ultralytics still needs a val split


def _media_comparisons(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                if isinstance(side, ast.Constant) and side.value in media_axis.AXIS:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_place_branches_on_a_media_name() -> None:
    assert [line for name in CONSULTERS for line in _media_comparisons(ROOT / name)] == []
