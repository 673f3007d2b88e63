"""Video tracks against a real Label Studio: a prediction on open, stored as sent, drawn in Chromium at its frames.

One VP8 WebM of moving shapes (a square and a circle that cross, a square that leaves) in a
``<Video>`` + ``<VideoRectangle>`` project. Opening the task makes Label Studio ask ``/predict``;
the stored prediction must be exactly what the backend answers when asked directly. In
Chromium the labeling page lists one region per track, and at each checked frame the editor
draws every box where Label Studio's own rule puts it on our sequence (``video_page``), on the
picture OpenCV decodes as that frame: Label Studio's frame N (1-based) shows the video at
``(N - 1) / fps`` seconds, OpenCV's N-th frame, the frame our backend calls N. A keyframe's
``time`` is ``N / fps`` in Label Studio's own serializer, as in ours; the editor never reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.e2e import projects
from tests.e2e.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _browser, log_in
from tests.support import moving_shapes, video_page
from tests.support.backend_server import BackendServer
from tests.support.label_studio import LabelStudioServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LABELS = ("square", "circle")  # the shapes model's classes, in class id order
CONFIG = (f'<View><Video name="video" value="$video" framerate="{moving_shapes.FPS}"/>'
          '<VideoRectangle name="box" toName="video"/><Labels name="videoLabels" toName="video">'
          + "".join(f'<Label value="{label}"/>' for label in LABELS) + "</Labels></View>")
FRAMES = 60
# 2: the first move; 15: all three apart; 45: the crossing is over and the third square has left
CHECKED_FRAMES = (2, 15, 45)
SCREENSHOT_FRAME = 15
SCREENSHOT = ARTIFACTS / "e2e-labeling-page-video.png"
TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class VideoTask:
    project: int
    task_id: int
    video: moving_shapes.MovingVideo
    stored: dict[str, Any]  # the prediction Label Studio stored on open
    direct: dict[str, Any]  # the backend's answer to the same task, asked directly


@pytest.fixture(scope="module")
def video_task(label_studio: LabelStudioServer, backend: BackendServer) -> VideoTask:
    project = int(label_studio.client().projects.create(title="e2e: video", label_config=CONFIG).id)
    folder = label_studio.document_root / f"video-{project}"
    video = moving_shapes.write(folder / "moving.webm", frames=FRAMES)
    label_studio.client().import_storage.local.create(project=project, path=str(folder), regex_filter=r".*\.webm",
                                                      use_blob_urls=True, title=folder.name)
    answer = label_studio.api("POST", f"/api/projects/{project}/import",
                              json=[{"data": {"video": label_studio.local_files_url(video.path)}}])
    answer.raise_for_status()
    projects.connect_backend(label_studio, project, backend.url)
    [task_id] = projects.task_ids(label_studio, project)
    task = projects.open_task(label_studio, task_id)  # Label Studio calls /predict inside
    assert len(task["predictions"]) == 1, task["predictions"]
    direct = requests.post(f"{backend.url}/predict", timeout=120, json={
        "tasks": [{"id": task_id, "data": task["data"]}], "label_config": CONFIG, "project": f"{project}.0"})
    direct.raise_for_status()
    [mine] = direct.json()["results"]
    return VideoTask(project, task_id, video, task["predictions"][0], mine)


def test_the_prediction_on_open_is_stored_as_the_backend_sent_it(video_task: VideoTask) -> None:
    stored, direct = video_task.stored, video_task.direct
    assert stored["model_version"] == direct["model_version"]
    assert stored["result"] == direct["result"]  # sequences, ids, scores: nothing rewritten by Label Studio
    regions = stored["result"]
    for region in regions:
        value = region["value"]
        assert (region["type"], region["from_name"], region["to_name"]) == ("videorectangle", "box", "video")
        assert value["labels"][0] in LABELS and len(value["labels"]) == 1, value["labels"]
        assert (value["framesCount"], value["duration"]) == (FRAMES, pytest.approx(FRAMES / moving_shapes.FPS))
        assert value["sequence"][-1]["enabled"] is False, value["sequence"][-1]  # a track ends on a closing key
    found = {label: sum(r["value"]["labels"] == [label] for r in regions) for label in LABELS}
    covered = [_covered(thing, regions) for thing in video_task.video.objects]
    print(f"\n[video on open] {len(regions)} tracks stored as sent ({found}), "
          f"{sum(len(r['value']['sequence']) for r in regions)} keyframes in all; share of frames each object is "
          f"boxed under its label (Label Studio's rule): {[round(c, 2) for c in covered]}")
    # two squares and a circle, each followed with at most one identity switch (the crossing)
    assert 3 <= len(regions) <= 6 and found["circle"] >= 1 and found["square"] >= 2, found
    assert all(c >= 0.8 for c in covered), covered


@pytest.mark.browser
def test_the_labeling_page_draws_the_tracks_on_their_frames(label_studio: LabelStudioServer,
                                                            video_task: VideoTask) -> None:
    regions = video_task.stored["result"]
    with _browser() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            log_in(page, label_studio)
            page.goto(f"{label_studio.base_url}/projects/{video_task.project}/data?task={video_task.task_id}")
            video_page.wait_for_length(page, FRAMES, TIMEOUT_MS)
            page.locator("[role=treeitem]").nth(len(regions) - 1).wait_for(timeout=TIMEOUT_MS)
            listed = page.locator("[role=treeitem]").count()
            in_editor = page.evaluate(video_page.SEQUENCES_JS)
            serialized = page.evaluate(video_page.SERIALIZED_JS)
            shown = {}
            for frame in CHECKED_FRAMES:
                shown[frame] = video_page.shown_at(page, frame, TIMEOUT_MS)
                if frame == SCREENSHOT_FRAME:
                    ARTIFACTS.mkdir(exist_ok=True)
                    page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()

    assert listed == len(regions), (listed, len(regions))
    # the editor's regions (the draft it makes from the prediction) hold our sequences unchanged, and
    # saved as they are give our values again: keyframe times, frame count and duration mean the same
    assert _by_start(in_editor) == _by_start([r["value"]["sequence"] for r in regions])
    assert {r["id"]: r["value"] for r in serialized} == {r["id"]: r["value"] for r in regions}
    decoded = video_page.decoded_colour_boxes(video_task.video)
    assert len(decoded) == FRAMES
    for frame, seen in shown.items():
        assert seen["frame"] == frame and abs(seen["time"] - (frame - 1) / moving_shapes.FPS) < 0.01, seen
        # what the page draws is Label Studio's rule applied to our keyframes, box for box
        wanted = sorted(b for r in regions if (b := video_page.ls_shown_box(r["value"]["sequence"], frame)))
        drawn = sorted(seen["rects"])
        assert len(drawn) == len(wanted) and np.allclose(drawn, wanted, atol=0.05), (frame, drawn, wanted)
        # the picture under them is OpenCV's frame `frame` (1-based), the one the backend tracked as `frame`
        assert seen["colours"] == decoded[frame], (frame, seen["colours"], decoded[frame])
        assert seen["colours"] != decoded[frame - 1], (frame, "the page shows the frame before")
        for colour, box in seen["colours"].items():  # every object on screen has a box on it
            best = max((video_page.iou(box, rect) for rect in drawn), default=0.0)
            assert best >= 0.7, (frame, colour, box, drawn)
    print(f"\n[video in Chromium] {listed} regions listed of {len(regions)} tracks; at frames {CHECKED_FRAMES} "
          f"{[len(s['rects']) for s in shown.values()]} boxes drawn, each on its object")
    assert SCREENSHOT.stat().st_size > 10_000


@pytest.mark.browser
def test_chromium_plays_the_webm_that_opencv_reads_frame_for_frame(tmp_path: Path) -> None:
    """Why the browser checks use WebM: Chromium refuses OpenCV's mp4v, plays its VP8, whose frames OpenCV reads."""
    webm = moving_shapes.write(tmp_path / "moving.webm", frames=FRAMES)
    mp4 = moving_shapes.write(tmp_path / "moving.mp4", frames=FRAMES)
    read = len(video_page.decoded_colour_boxes(webm))
    with _browser() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(tmp_path.as_uri())
            played = page.evaluate(video_page.PLAY_JS, [webm.path.as_uri(), TIMEOUT_MS])
            refused = page.evaluate(video_page.PLAY_JS, [mp4.path.as_uri(), TIMEOUT_MS])
        finally:
            browser.close()
    print(f"\n[codecs] VP8 WebM in Chromium: {played}; mp4v: {refused}; OpenCV reads {read} WebM frames")
    assert read == FRAMES
    assert played["error"] is None and played["readyState"] == 4, played
    assert (played["width"], played["height"]) == moving_shapes.SIZE, played
    assert played["duration"] == pytest.approx(FRAMES / moving_shapes.FPS) and played["time"] > 0, played
    assert refused["error"] == 4, refused  # MEDIA_ERR_SRC_NOT_SUPPORTED: no MPEG-4 part 2 decoder


def _covered(thing: moving_shapes.MovingObject, regions: list[dict[str, Any]]) -> float:
    """The share of the frames ``thing`` is fully in view on which a region of its label is drawn on it (IoU 0.5)."""
    label = LABELS[thing.class_id]
    frames = [(n, list(box)) for n, box in enumerate(thing.boxes, start=1) if box is not None and box[1] > 0]
    hits = sum(any(video_page.iou(box, shown) >= 0.5 for r in regions if r["value"]["labels"] == [label]
                   if (shown := video_page.ls_shown_box(r["value"]["sequence"], n)) is not None)
               for n, box in frames)
    return hits / len(frames)


def _by_start(sequences: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Sequences in a fixed order (by their first keyframe), to compare sets of them."""
    return sorted(sequences, key=lambda keys: (keys[0]["frame"], keys[0]["x"], keys[0]["y"]))
