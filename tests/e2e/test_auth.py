"""Checks 5-6: basic auth between Label Studio and the backend; image download with each kind of token."""

from __future__ import annotations

from pathlib import Path

import pytest
from label_studio_sdk.core.api_error import ApiError

from tests.e2e import projects
from tests.support.backend_server import BackendServer
from tests.support.label_studio import LabelStudioServer
from tests.support.sample_images import Sample, matched, write_samples

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AUTH_ERROR = "authentication parameters were either not provided or are incorrect"  # Label Studio's words


def _project_with_uploads(ls: LabelStudioServer, title: str, folder: Path, seed: int) -> tuple[int, list[Sample]]:
    """Uploaded files live in Label Studio's media folder: the backend can only get them over HTTP."""
    project = projects.create_project(ls, title)
    samples = write_samples(folder, 2, first_seed=seed, orientations=(1, 6))
    projects.upload_images(ls, project, [s.path for s in samples])
    return project, samples


def _assert_predicted(ls: LabelStudioServer, project: int, samples: list[Sample]) -> None:
    for task_id in projects.task_ids(ls, project):
        task = projects.open_task(ls, task_id)
        assert len(task["predictions"]) == 1, f"task {task_id} got no prediction"
        sample = projects.sample_for(task, samples)
        assert matched(sample, task["predictions"][0]["result"]) >= 1, f"task {task_id}: no box on an object"


def test_5_basic_auth_set_in_label_studio_works(label_studio: LabelStudioServer, start_extra_backend,
                                                tmp_path: Path) -> None:
    guarded = start_extra_backend(BASIC_AUTH_USER="annotators", BASIC_AUTH_PASS="s3cret-pass")
    project, samples = _project_with_uploads(label_studio, "e2e: basic auth", tmp_path, seed=300)

    ml = projects.connect_backend(label_studio, project, guarded.url, auth_method="BASIC_AUTH",
                                  basic_auth_user="annotators", basic_auth_pass="s3cret-pass")

    assert ml.state == "CO", ml.error_message
    assert ml.auth_method == "BASIC_AUTH"
    _assert_predicted(label_studio, project, samples)


def test_5_wrong_basic_auth_password_shows_label_studios_authentication_error(
        label_studio: LabelStudioServer, start_extra_backend, tmp_path: Path) -> None:
    guarded = start_extra_backend(BASIC_AUTH_USER="annotators", BASIC_AUTH_PASS="s3cret-pass")
    project = projects.create_project(label_studio, "e2e: wrong basic auth")

    with pytest.raises(ApiError) as refused:
        projects.connect_backend(label_studio, project, guarded.url, auth_method="BASIC_AUTH",
                                 basic_auth_user="annotators", basic_auth_pass="wrong-pass")

    assert refused.value.status_code == 400
    assert AUTH_ERROR in str(refused.value.body), refused.value.body
    assert list(label_studio.client().ml.list(project=project)) == []  # nothing was connected


@pytest.mark.parametrize("key_kind", ["legacy", "personal access token"])
def test_6_images_download_with_each_kind_of_token(label_studio: LabelStudioServer, backend: BackendServer,
                                                   start_extra_backend, tmp_path: Path, key_kind: str) -> None:
    if key_kind == "legacy":
        server = backend  # the shared backend runs with LABEL_STUDIO_API_KEY=<legacy token>
    else:
        server = start_extra_backend(LABEL_STUDIO_API_KEY=label_studio.personal_access_token())
    project, samples = _project_with_uploads(label_studio, f"e2e: download with {key_kind}", tmp_path, seed=400)
    projects.connect_backend(label_studio, project, server.url)

    _assert_predicted(label_studio, project, samples)


def test_6_without_a_token_the_download_is_refused(label_studio: LabelStudioServer, start_extra_backend,
                                                   tmp_path: Path) -> None:
    """The control for the test above: the same setup with no key gets no predictions."""
    server = start_extra_backend(LABEL_STUDIO_API_KEY="")
    project, _ = _project_with_uploads(label_studio, "e2e: download without token", tmp_path, seed=400)
    projects.connect_backend(label_studio, project, server.url)

    for task_id in projects.task_ids(label_studio, project):
        assert projects.open_task(label_studio, task_id)["predictions"] == []
    assert "set LABEL_STUDIO_API_KEY" in server.log_path.read_text()
