"""The labeling-loop benchmark's mechanics, short: a real Label Studio, the real service, one retrain.

A simulated annotator labels 36 generated images (``tests/support/loop_project.py``) in order
through Label Studio; the base (the shapes model) knows squares and circles, not triangles.
After the ``TRAIN_EVERY_N``-th submission the annotator waits for the run the webhook started
(the benchmark does not wait; here it makes the promotion land at a known task). Checked: every
task got its pre-label on open from the version serving at that moment, the run promoted, and
every task opened after the promotion got the new version. The edit counter's exact counts on a
hand-made case are ``tests/test_edit_count.py``'s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import backend_env
from tests.support.backend_server import start_backend
from tests.support.edit_count import Edits
from tests.support.label_studio import LabelStudioServer
from tests.support.labeling_loop import STRATEGIES, Service, label_project, wait_for_run
from tests.support.loop_project import write_images

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IMAGES, EVERY_N = 36, 24
# the smallest settings that learned triangles well enough to promote (runs in about a minute on 2 cores)
SETTINGS = {"TRAIN_EVERY_N": str(EVERY_N), "TRAIN_EPOCHS": "40", "TRAIN_IMGSZ": "160", "TRAIN_BATCH": "8",
            "TRAIN_PATIENCE": "40", "TRAIN_MIN_IMAGES": "8", "TRAIN_THREADS": "2", "RUNTIME": "torch"}


def test_a_promotion_mid_project_changes_the_version_later_tasks_get(label_studio: LabelStudioServer,
                                                                      shapes_model_root: Path,
                                                                      tmp_path: Path) -> None:
    images = write_images(label_studio.document_root / "loop-ci", IMAGES, seed=900)
    server = start_backend(tmp_path / "backend", backend_env(label_studio, shapes_model_root, **SETTINGS))
    runs: list[dict] = []

    def annotator(labeled: int, _edits: Edits, service: Service | None) -> None:
        if labeled == EVERY_N and service is not None:
            runs.append(wait_for_run(service))

    try:
        result = label_project(label_studio, images, STRATEGIES["loop"], server.url, "e2e: labeling loop", annotator)
    finally:
        server.stop()

    assert [o.step for o in result.opened] == list(range(IMAGES))
    for opened in result.opened:  # each pre-label came on open, from the version serving then
        assert opened.version is not None and opened.version in opened.serving, opened
    base = result.opened[0].version
    assert len(runs) == 1 and runs[0]["state"] == "promoted", (runs[0]["reason"], runs[0]["metrics"])
    new = runs[0]["version"]
    assert new != base
    assert {o.version for o in result.opened[:EVERY_N]} == {base}
    assert {o.version for o in result.opened[EVERY_N:]} == {new}
    before = sum(o.edits.total for o in result.opened[:EVERY_N]) / EVERY_N
    after = sum(o.edits.total for o in result.opened[EVERY_N:]) / (IMAGES - EVERY_N)
    print(f"\n[loop] edits per image: {before:.2f} from {base}, {after:.2f} from {new}; run {runs[0]['reason']}")
