"""A real headless Chromium shows the backend's keypoint pre-labels (points nested under their box)."""

from __future__ import annotations

import pytest

from tests.e2e import projects
from tests.e2e.test_browser import labeling_page_regions
from tests.e2e.test_kind_keypoints import config, pose_backend  # noqa: F401  (the module's backend fixture)
from tests.support import tiny_pose
from tests.support.backend_server import BackendServer
from tests.support.label_studio import LabelStudioServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]


def test_the_labeling_page_shows_every_predicted_point_and_box(label_studio: LabelStudioServer,
                                                                pose_backend: BackendServer) -> None:  # noqa: F811
    project = int(label_studio.client().projects.create(title="e2e: keypoints browser", label_config=config()).id)
    # one square: its box and 4 points fit the regions panel, which lists only what it shows
    sample = tiny_pose.write(label_studio.document_root / f"pose-browser-{project}", 8500, orientation=6,
                             size=(256, 192))
    projects.import_local_tasks(label_studio, project, [sample.path])
    projects.connect_backend(label_studio, project, pose_backend.url)
    [task_id] = projects.task_ids(label_studio, project)
    predicted = projects.open_task(label_studio, task_id)["predictions"][0]["result"]
    points = [r for r in predicted if r["type"] == "keypointlabels"]
    assert points and all(p.get("parentID") for p in points), predicted
    shown = labeling_page_regions(label_studio, project, task_id, "e2e-labeling-page-keypoints.png", len(predicted))
    print(f"\n[keypoints in Chromium] {shown} regions shown of {len(predicted)} predicted "
          f"({len(points)} points under {len(predicted) - len(points)} boxes)")
    assert shown == len(predicted)
