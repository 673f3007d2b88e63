"""Check 7: a real headless Chromium shows the backend's pre-annotated regions on the labeling page."""

from __future__ import annotations

import shutil
from pathlib import Path

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

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "e2e-labeling-page.png"
    with _browser() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{label_studio.base_url}/user/login/")
            page.fill("input[name=email]", label_studio.email)
            page.fill("input[name=password]", label_studio.password)
            with page.expect_navigation():
                page.click("button[type=submit]")
            assert "/user/login" not in page.url, "login failed"

            page.goto(f"{label_studio.base_url}/projects/{project}/data?task={task_id}")
            regions = page.locator("[role=treeitem]")
            regions.first.wait_for(timeout=60_000)
            page.wait_for_timeout(2000)  # let the panel finish rendering every region
            page.screenshot(path=str(shot))
            assert regions.count() == len(predicted)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
