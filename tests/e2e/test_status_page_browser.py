"""A real headless Chromium opens the status page while a run goes and after it; screenshots in artifacts/.

No Label Studio is needed: the project trains from an export file, in a real child process,
as in ``tests/web/test_status_page.py``. Two runs: the first makes a version, so the page during
the second shows the version table beside the running curves.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _browser
from tests.support.shapes_project import LABEL_CONFIG
from tests.web.test_status_page import CURVE, PROJECT, StatusServer, tiny_run_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EPOCHS = 30  # a run long enough (about 10 s of epochs here) to open the page in the middle of it


def _wait(check, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)  # a poll interval


def _curve_drawn(server: StatusServer) -> bool:
    """The running run's curve has two points; a run that ended before fails here, with its reason."""
    status = requests.get(f"{server.url}/training/status", params={"project": PROJECT}, timeout=5).json()
    assert status["state"] in ("queued", "running"), f"the run ended before its curve was seen: {status['last_run']}"
    page = requests.get(f"{server.url}/status", timeout=5).text
    return "<b>running</b>" in page and bool(CURVE.search(page))


def _predict(server: StatusServer, count: int) -> None:
    """Pre-label ``count`` of the project's own images, so the page has latency figures to show."""
    tasks = json.loads((server.workdir / "export.json").read_text())["tasks"][:count]
    answer = requests.post(f"{server.url}/predict", json={"tasks": [{"id": t["id"], "data": t["data"]} for t in tasks],
                                                          "label_config": LABEL_CONFIG, "project": f"{PROJECT}.1"},
                           timeout=120)
    assert answer.status_code == 200 and len(answer.json()["results"]) == count, answer.text


def _images_loaded(page) -> None:
    page.evaluate("() => Array.from(document.images).forEach(i => i.scrollIntoView())")
    _wait(lambda: page.evaluate("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"),
          "the plots to load", 30)
    page.evaluate("() => window.scrollTo(0, 0)")


def _lines_drawn(page) -> int:
    """SVG paths on the page whose line goes through two points or more, as the browser parsed them."""
    return page.eval_on_selector_all("svg.chart path", "paths => paths.filter(p => (p.getAttribute('d') || '')"
                                                       ".split('L').length > 1).length")


def test_the_status_page_in_chromium_during_and_after_a_run(tmp_path: Path, random_model_root: Path) -> None:
    server = tiny_run_server(tmp_path, random_model_root, EPOCHS)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        server.start_training(PROJECT)  # the first run: a version to list
        _wait(lambda: server.state(PROJECT) == "idle", "the first run to end")
        _predict(server, 3)
        with _browser() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                server.start_training(PROJECT)
                _wait(lambda: _curve_drawn(server), "the second run's curve")
                page.goto(f"{server.url}/")  # Chromium's Accept prefers text/html: "/" gives it the page
                assert page.title() == "YOLO backend status"
                assert page.get_by_text("epoch", exact=False).first.is_visible()
                assert page.locator("table.versions").is_visible() and _lines_drawn(page) >= 2
                assert "3 tasks answered" in page.content()
                _images_loaded(page)
                page.screenshot(path=str(ARTIFACTS / "status-page-during-run.png"), full_page=True)

                _wait(lambda: server.state(PROJECT) == "idle", "the second run to end")
                page.goto(f"{server.url}/status")
                versions = page.locator("table.versions")
                assert versions.is_visible() and f"p{PROJECT}-v1" in versions.inner_text()
                assert page.locator("table.runs").inner_text().count("promoted") + \
                    page.locator("table.runs").inner_text().count("rejected") == 2
                assert _lines_drawn(page) >= 2
                assert page.locator("img[alt=results]").count() == 1
                _images_loaded(page)
                page.screenshot(path=str(ARTIFACTS / "status-page-after-run.png"), full_page=True)
            finally:
                browser.close()
    finally:
        server.close()
    for name in ("status-page-during-run.png", "status-page-after-run.png"):
        assert (ARTIFACTS / name).stat().st_size > 20_000, name
