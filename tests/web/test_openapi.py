"""The OpenAPI document matches the app, and the live app survives Schemathesis' generated requests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi import checks as openapi_checks

from tests.support.live_app import LiveApp
from yolo_backend.web.openapi import document

REQUESTS_PER_MODE = 100  # x 6 operations with inputs x 2 modes, + the input-less ones: > 1,000 requests


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("openapi")
    (workdir / "docs").mkdir()
    app = LiveApp(workdir, workdir / "docs", admin_open=True)
    yield app
    app.close()


def test_every_route_is_documented_and_every_documented_route_exists(live: LiveApp) -> None:
    served = {}
    for rule in live.app.url_map.iter_rules():
        if rule.endpoint != "static":
            served.setdefault(rule.rule, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    documented = {path: set(item) for path, item in document()["paths"].items()}
    assert documented == served


def test_the_app_serves_the_document(live: LiveApp) -> None:
    answer = requests.get(f"{live.url}/openapi.json", timeout=5)
    assert answer.status_code == 200 and answer.json() == document()
    assert document(auth=True)["paths"]["/predict"]["post"]["security"] == [{"basic": []}]
    assert "security" not in document(auth=True)["paths"]["/webhook"]["post"]  # Label Studio sends no auth there


def test_error_shape_is_the_same_everywhere(live: LiveApp) -> None:
    answers = [requests.post(f"{live.url}/predict", data="{", timeout=5),
               requests.get(f"{live.url}/nowhere", timeout=5),
               requests.delete(f"{live.url}/predict", timeout=5),
               requests.get(f"{live.url}/training/status", timeout=5)]
    assert [a.status_code for a in answers] == [400, 404, 405, 400]
    for answer in answers:
        assert set(answer.json()) == {"error", "message"} and answer.json()["message"]


CHECKS = [openapi_checks.status_code_conformance, openapi_checks.content_type_conformance,
          openapi_checks.response_schema_conformance, openapi_checks.negative_data_rejection]


@pytest.mark.slow
def test_schemathesis_fuzzing_finds_no_5xx_and_no_undocumented_answer(live: LiveApp) -> None:
    """At least 1,000 generated requests (valid and invalid) against the live HTTP server."""
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=REQUESTS_PER_MODE, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def exercise(case: schemathesis.Case) -> None:
                response = case.call(session=session, timeout=10)
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.path}: {response.status_code} {response.text[:200]}")
                    return
                try:
                    case.validate_response(response, checks=CHECKS)
                except (FailureGroup, AssertionError) as exc:
                    failures.append(f"{case.method} {case.path}: {str(exc)[:400]}")

            try:
                exercise()
            except Unsatisfiable:  # no input to make invalid (GET /health): nothing to send in that mode
                continue
    total = sum(statuses.values())
    print(f"schemathesis: {total} requests, statuses {dict(sorted(statuses.items()))}")
    assert total >= 1000, f"only {total} generated requests"
    assert not failures, "\n".join(failures[:10])
    assert requests.get(f"{live.url}/health", timeout=60).json()["status"] == "UP"


def test_document_is_valid_json_schema_for_errors(tmp_path: Path) -> None:
    """The error schema lists every kind the code can raise, so clients can switch on it."""
    import yolo_backend.errors as errors

    kinds = {cls.kind for cls in vars(errors).values() if isinstance(cls, type) and hasattr(cls, "kind")}
    assert kinds <= set(document()["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
