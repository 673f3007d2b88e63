"""Smart tools in a real Label Studio and headless Chromium: a click or a loose box asks the backend for the object.

The annotator turns Auto-Annotation and Auto-Accept Suggestions on, picks a label and the smart
tool (the toolbar's Auto-Detect), and clicks a shape or draws a loose box around one. The editor
posts the smart region to ``/api/ml/<id>/interactive-annotating``; Label Studio passes it to the
backend's ``/predict`` as ``params.context``; the answer's regions are accepted into the
annotation in place of the smart region, which is then submitted and read back from the API:

- a smart ``KeyPointLabels`` click on a shape, served by the tiny segment model -> one
  ``BrushLabels`` mask over that shape, with the label the annotator chose;
- a loose smart ``RectangleLabels`` box around a shape, served by the shapes detect model ->
  one tight box on it (IoU with the true box >= 0.7).

The projects hide predictions (``show_collab_predictions`` off) so opening the task pre-labels
nothing: every region in the annotation comes from the smart request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e import projects
from tests.e2e.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _browser, log_in
from tests.e2e.test_kind_masks import seg_backend  # noqa: F401  (the module's tiny segment backend)
from tests.support import tiny_segment
from tests.support.backend_server import BackendServer
from tests.support.label_studio import LabelStudioServer
from tests.support.sample_images import iou, region_box, write_sample

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

CLICK_CONFIG = ('<View><Image name="image" value="$image"/>'
                '<KeyPointLabels name="click" toName="image" smart="true">{labels}</KeyPointLabels>'
                '<BrushLabels name="mask" toName="image">{labels}</BrushLabels></View>')
BOX_CONFIG = ('<View><Image name="image" value="$image"/>'
              '<RectangleLabels name="box" toName="image" smart="true">{labels}</RectangleLabels></View>')
TIMEOUT_S = 60.0  # for the page to load, and for the smart answer to show (it takes well under a second)


def labels(names: tuple[str, ...]) -> str:
    return "".join(f'<Label value="{name}"/>' for name in names)


@pytest.fixture(scope="module")
def annotator(label_studio: LabelStudioServer) -> Iterator[Any]:
    """One Chromium page, logged in, shared by both smart tools (the toggles stay on between tasks)."""
    with _browser() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            log_in(page, label_studio)
            yield page
        finally:
            browser.close()


def smart_project(ls: LabelStudioServer, title: str, config: str, image_path: Path, backend_url: str
                  ) -> tuple[int, int]:
    """A project with predictions hidden, its one task, and the backend connected for interactive pre-annotations."""
    client = ls.client()
    project = int(client.projects.create(title=title, label_config=config, show_collab_predictions=False).id)
    projects.import_local_tasks(ls, project, [image_path])
    client.ml.create(project=project, url=backend_url, title="yolo", is_interactive=True)
    [task_id] = projects.task_ids(ls, project)
    return project, task_id


def open_with_smart_tool(page: Any, ls: LabelStudioServer, project: int, task_id: int, label: str, tool: str
                         ) -> dict[str, float]:
    """Open the task, turn Auto-Annotation and Auto-Accept on, pick ``label`` and the smart ``tool``.

    Returns the image's box on screen (the Konva stage, which the displayed image fills).
    """
    page.goto(f"{ls.base_url}/projects/{project}/data?task={task_id}")
    auto = page.get_by_test_id("bottombar-auto-annotation-toggle")
    auto.wait_for(state="attached", timeout=TIMEOUT_S * 1000)  # only with an interactive backend connected
    if not auto.is_checked():  # the editor keeps both toggles in localStorage
        page.get_by_text("Auto-Annotation", exact=True).click()
    accept = page.get_by_test_id("bottombar-auto-accept-toggle")
    accept.wait_for(state="attached")
    if not accept.is_checked():
        page.get_by_text("Auto-Accept Suggestions", exact=True).click()
    assert auto.is_checked() and accept.is_checked()

    page.locator(".lsf-labels").first.get_by_text(label, exact=True).click()  # the smart control's labels
    auto_detect = page.locator(".lsf-toolbar button.lsf-tool_smart").first  # "Auto-Detect" (hotkey M)
    auto_detect.hover()  # its flyout lists one smart tool per control: pick this control's
    page.locator(f".lsf-toolbar__smart button[aria-label={tool}]").click()
    assert "lsf-tool_active" in (auto_detect.get_attribute("class") or ""), "the smart tool is not selected"
    stage = page.locator(".konvajs-content").first.bounding_box()
    assert stage, "no image stage on the labeling page"
    return stage


def smart_request(page: Any, gesture: Callable[[], None]) -> tuple[dict, dict]:
    """Run ``gesture`` and return the editor's interactive request body and Label Studio's answer to it."""
    with page.expect_response(lambda r: "/interactive-annotating" in r.url, timeout=TIMEOUT_S * 1000) as answer:
        gesture()
    response = answer.value
    return json.loads(response.request.post_data or "{}"), response.json()


def wait_for_result(page: Any, wanted: str, why: str) -> None:
    """Poll the editor's annotation until its regions are one ``wanted`` region (the smart one accepted and gone)."""
    probe = "() => window.dataManager?.lsf?.currentAnnotation?.serializeAnnotation().map(r => r.type) ?? []"
    deadline = time.monotonic() + TIMEOUT_S
    types = page.evaluate(probe)
    while types != [wanted] and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # a poll of the editor's state, not a fixed wait
        types = page.evaluate(probe)
    assert types == [wanted], f"the annotation holds {types}, not one {wanted} region\n{why}"


def submit(page: Any, ls: LabelStudioServer, task_id: int, screenshot: str) -> list[dict]:
    """Screenshot, press Submit, and read the saved annotation's result back from the API."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / screenshot))
    with page.expect_response(lambda r: r.request.method == "POST" and f"/api/tasks/{task_id}/annotations" in r.url,
                              timeout=TIMEOUT_S * 1000) as saved:
        page.get_by_role("button", name="Submit").click()
    assert saved.value.ok, f"submitting failed: {saved.value.status} {saved.value.text()[:500]}"
    [annotation] = projects.open_task(ls, task_id)["annotations"]
    return annotation["result"]


def explain(request: dict, answer: dict, backend: BackendServer) -> str:
    """What the editor sent and what came back, for a failure message."""
    tail = backend.log_path.read_text(errors="replace")[-1500:] if backend.log_path.exists() else ""
    return (f"editor -> Label Studio (becomes /predict params.context): {json.dumps(request)[:1500]}\n"
            f"Label Studio's answer (data = the backend's results[0]): {json.dumps(answer)[:1500]}\n"
            f"backend log tail:\n{tail}")


def brush_mask(region: dict) -> np.ndarray:
    """A brush region's RLE (Label Studio's RGBA of the displayed image) as a bool mask, height x width."""
    from label_studio_sdk.converter.brush import decode_rle

    width, height = int(region["original_width"]), int(region["original_height"])
    return decode_rle(region["value"]["rle"]).reshape(height, width, 4)[:, :, 3] >= 128


def test_a_smart_click_on_a_shape_gives_its_brush_mask(label_studio: LabelStudioServer, annotator: Any,
                                                       seg_backend: BackendServer) -> None:  # noqa: F811
    names = tiny_segment.NAMES  # the tiny segment model's classes: red, blue
    # a blue circle between a red triangle and a red circle, stored sideways (EXIF 6)
    sample = tiny_segment.write(label_studio.document_root / "assist-click", 9505, orientation=6, suffix=".jpg")
    target = next(i for i, (cls, points) in enumerate(sample.objects) if names[cls] == "blue" and len(points) > 4)
    cls, _ = sample.objects[target]
    truth, others = sample.masks()[target], np.logical_or.reduce(
        [m for i, m in enumerate(sample.masks()) if i != target])
    project, task_id = smart_project(label_studio, "e2e: smart click", CLICK_CONFIG.format(labels=labels(names)),
                                     sample.path, seg_backend.url)

    stage = open_with_smart_tool(annotator, label_studio, project, task_id, names[cls], "key-point-tool")
    ys, xs = np.nonzero(truth)
    cx, cy = (xs.mean() + 0.5) / sample.width, (ys.mean() + 0.5) / sample.height  # the shape's centre, 0..1
    request, answer = smart_request(annotator, lambda: annotator.mouse.click(
        stage["x"] + cx * stage["width"], stage["y"] + cy * stage["height"]))
    why = explain(request, answer, seg_backend)
    sent = request["context"]["result"]
    assert [(r["type"], r["from_name"], r.get("is_positive")) for r in sent] == [("keypointlabels", "click", True)], why
    assert sent[0]["value"]["keypointlabels"] == [names[cls]], why
    wait_for_result(annotator, "brushlabels", why)

    result = submit(annotator, label_studio, task_id, "e2e-assist-smart-click.png")
    assert [(r["type"], r["from_name"]) for r in result] == [("brushlabels", "mask")], f"{result}\n{why}"
    [region] = result
    assert region["value"]["brushlabels"] == [names[cls]], why
    assert (region["original_width"], region["original_height"]) == (sample.width, sample.height), why
    mask = brush_mask(region)
    covered, spill = (mask & truth).sum() / truth.sum(), (mask & ~truth).sum() / max(mask.sum(), 1)
    print(f"\n[smart click] the brush mask covers {covered:.0%} of the clicked {names[cls]} shape, "
          f"{spill:.0%} of it lies outside it, {(mask & others).sum()} px on the other shapes")
    assert covered >= 0.8 and spill <= 0.2, (covered, spill, why)
    assert (mask & others).sum() <= 0.02 * others.sum(), why


def test_a_loose_smart_box_becomes_a_tight_box(label_studio: LabelStudioServer, annotator: Any,
                                               backend: BackendServer) -> None:
    # a square and a circle (the shapes model's classes), stored sideways (EXIF 6); the square is boxed
    sample = write_sample(label_studio.document_root / "assist-box", seed=18, orientation=6)
    shape = next(s for s in sample.shapes if s.label == "square")
    project, task_id = smart_project(label_studio, "e2e: smart box",
                                     BOX_CONFIG.format(labels=labels(("square", "circle"))), sample.path, backend.url)

    stage = open_with_smart_tool(annotator, label_studio, project, task_id, shape.label, "rectangle-tool")
    x1, y1, x2, y2 = shape.box
    margin = 0.2 * (x2 - x1)  # a loose box: IoU with the shape's box about 0.5
    loose = (max(x1 - margin, 1), max(y1 - margin, 1), min(x2 + margin, sample.width - 1),
             min(y2 + margin, sample.height - 1))

    def screen(x: float, y: float) -> tuple[float, float]:
        return stage["x"] + x / sample.width * stage["width"], stage["y"] + y / sample.height * stage["height"]

    def drag() -> None:
        annotator.mouse.move(*screen(loose[0], loose[1]))
        annotator.mouse.down()
        annotator.mouse.move(*screen((loose[0] + loose[2]) / 2, (loose[1] + loose[3]) / 2), steps=5)
        annotator.mouse.move(*screen(loose[2], loose[3]), steps=5)
        annotator.mouse.up()

    request, answer = smart_request(annotator, drag)
    why = explain(request, answer, backend)
    sent = request["context"]["result"]
    assert [(r["type"], r["from_name"]) for r in sent] == [("rectanglelabels", "box")], why
    drawn = region_box(sent[0], sample.width, sample.height)
    wait_for_result(annotator, "rectanglelabels", why)

    result = submit(annotator, label_studio, task_id, "e2e-assist-smart-box.png")
    assert [(r["type"], r["from_name"]) for r in result] == [("rectanglelabels", "box")], f"{result}\n{why}"
    [region] = result
    assert region["value"]["rectanglelabels"] == [shape.label], why
    tight = iou(region_box(region, sample.width, sample.height), shape.box)
    print(f"\n[smart box] drawn box IoU {iou(drawn, shape.box):.2f} with the {shape.label}; "
          f"the answer's {tight:.2f}")
    assert tight >= 0.7, (tight, why)
