"""Configuration, Dockerfile and compose file stay honest."""

from __future__ import annotations

import ast
import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from yolo_backend.config import SETTINGS, Settings, markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_has_a_field_in_the_same_order() -> None:
    assert [f.name for f in dataclasses.fields(Settings)] == [v.env.lower() for v in SETTINGS]


def test_each_setting_is_declared_once_as_a_typed_field() -> None:
    """No twin list: config.py declares a setting by one annotated field, never again by a quoted name."""
    tree = ast.parse((ROOT / "yolo_backend" / "config.py").read_text())
    names = {v.env for v in SETTINGS} | {v.env.lower() for v in SETTINGS}
    fields = [node.target.id for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
              and isinstance(node.target, ast.Name) and node.target.id in names]
    quoted = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in names]
    assert sorted(fields) == sorted(v.env.lower() for v in SETTINGS) and not quoted, quoted
    assert all(isinstance(v.kind, type) and v.why for v in SETTINGS) and dataclasses.is_dataclass(Settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings.from_env({}).port = 1  # type: ignore[misc]


def test_defaults_parse_and_bad_values_name_the_variable() -> None:
    settings = Settings.from_env({})
    assert settings.port == 9090 and settings.model_score_threshold == 0.5
    with pytest.raises(ValueError, match="MODEL_SCORE_THRESHOLD"):
        Settings.from_env({"MODEL_SCORE_THRESHOLD": "high"})
    with pytest.raises(ValueError, match="BASIC_AUTH"):
        Settings.from_env({"BASIC_AUTH_USER": "ann"})


def test_readme_documents_every_variable_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "regenerate the table: python -m yolo_backend.config"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_non_root_with_healthcheck_and_gunicorn() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 1000" in text and "HEALTHCHECK" in text and '"gunicorn", "_wsgi:app"' in text
    assert "whl/cpu" in text, "a CPU torch build by default"


def test_compose_shares_the_local_files_folder_read_only_with_the_backend() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    backend, studio = services["backend"], services["label-studio"]
    assert any(port.endswith(":9090:9090") for port in backend["ports"])  # on BACKEND_BIND, 127.0.0.1
    root = backend["environment"]["LOCAL_FILES_DOCUMENT_ROOT"]
    assert f"./files:{root}:ro" in backend["volumes"]
    assert studio["environment"]["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] == root
    mounted = {v.split(":")[1] for v in backend["volumes"]}
    assert {backend["environment"]["MODEL_ROOT"], backend["environment"]["MODEL_DIR"]} <= mounted
    assert set(compose["volumes"]) >= {"models", "model-state"}


def test_compose_gives_the_worker_the_settings_the_backend_trains_with() -> None:
    """A TRAIN_* set for the backend reaches the `rq worker` that runs its training (issue 15)."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    backend, worker = services["backend"]["environment"], services["worker"]["environment"]
    training = [v.env for v in SETTINGS if v.env.startswith("TRAIN_") and v.env != "TRAIN_MAX_QUEUED"]
    training += ["PROMOTE_MIN_GAIN", "CLASS_THRESHOLDS", "KEEP_VERSIONS", "MODEL_PATH", "MODEL_ROOT", "MODEL_DIR"]
    assert not [name for name in training if name not in worker], "the worker would train on defaults"
    assert all(backend[name] == worker[name] for name in worker), "one set of settings for both"
    assert "WEBHOOK_SECRET" not in worker and "BASIC_AUTH_PASS" not in worker  # web-side secrets stay there
    assert "REDIS_URL" in services["worker"]["command"][-1] and "TRAIN_QUEUE" in services["worker"]["command"][-1]
