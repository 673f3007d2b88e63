"""Check 7: a real headless Chromium shows the backend's pre-annotated regions on the labeling page."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import projects
from tests.support.backend_server import BackendServer
from tests.support.label_studio import LabelStudioServer, required
from tests.support.sample_images import matched, write_sample

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; never `playwright install` (it downloads browsers)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        required("playwright", "pip install -r requirements-test.txt")
    if not CHROMIUM.is_file() and not shutil.which("chromium"):
        required("chromium", "apt-get install -y chromium")
    return sync_playwright()


def test_7_labeling_page_shows_the_predicted_regions(label_studio: LabelStudioServer, backend: BackendServer,
                                                     tmp_path: Path) -> None:
    project = projects.create_project(label_studio, "e2e: browser")
    sample = write_sample(tmp_path, seed=0, orientation=6)  # a square and a circle, stored sideways
    [task_id] = projects.upload_images(label_studio, project, [sample.path])
    projects.connect_backend(label_studio, project, backend.url)
    predicted = projects.open_task(label_studio, task_id)["predictions"][0]["result"]
    assert matched(sample, predicted) >= 1, f"no predicted box on an object: {predicted}"

    shown = labeling_page_regions(label_studio, project, task_id, "e2e-labeling-page.png", len(predicted))
    assert shown == len(predicted)


def log_in(page: Any, ls: LabelStudioServer) -> None:
    """Log in through Label Studio's form, as a user would."""
    page.goto(f"{ls.base_url}/user/login/")
    page.fill("input[name=email]", ls.email)
    page.fill("input[name=password]", ls.password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/user/login" not in page.url, "login failed"


def labeling_page_regions(ls: LabelStudioServer, project: int, task_id: int, screenshot: str, expected: int,
                          timeout: float = 60.0) -> int:
    """Log in as a user would, open the task's labeling page, and count its regions once ``expected`` show.

    The regions panel fills in as the page renders: polled until it lists ``expected`` regions
    (or ``timeout``), then screenshotted to ``artifacts/<screenshot>``.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / screenshot
    with _browser() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            log_in(page, ls)

            page.goto(f"{ls.base_url}/projects/{project}/data?task={task_id}")
            regions = page.locator("[role=treeitem]")
            regions.first.wait_for(timeout=timeout * 1000)
            deadline = time.monotonic() + timeout
            count = regions.count()
            while count < expected and time.monotonic() < deadline:
                page.wait_for_timeout(100)  # a poll of the rendering page, not a fixed wait
                count = regions.count()  # nested regions re-render: the count that met ``expected`` is kept
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    return count
