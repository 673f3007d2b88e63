"""The ``yolo-ls`` command line: it explains itself and fails with hints, not tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from yolo_backend.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command, words", [
    ("import-yolo", ["--document-root", "--url-prefix", "--missing", "polygonlabels", "data.yaml"]),
    ("export-yolo", ["--from-file", "--project", "data.yaml", "--val"]),
    ("prelabel", ["--backend", "--chunk-size", "resume", "--model-version"]),
])
def test_each_command_explains_itself(command: str, words: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in words:
        assert word in text, word


def test_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "yolo_backend.cli", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0 and "import-yolo" in done.stdout and "prelabel" in done.stdout


def test_installed_entry_point_when_installed() -> None:
    script = Path(sys.executable).parent / "yolo-ls"
    if not script.is_file():
        pytest.skip("yolo-ls is not installed in this environment: pip install -e .")
    done = subprocess.run([str(script), "export-yolo", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Ultralytics layout" in done.stdout


def test_setup_errors_exit_2_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["import-yolo", str(tmp_path / "nowhere"), "--classes", "a", "--url-prefix", "x"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["import-yolo", str(tmp_path), "--classes", "a", "--document-root", ""]) == 2
    assert "--document-root" in capsys.readouterr().err
    assert main(["export-yolo", "-o", str(tmp_path / "o")]) == 2
    assert "--from-file" in capsys.readouterr().err
    assert main(["prelabel", "--project", "1", "--api-key", ""]) == 2
    assert "LABEL_STUDIO_API_KEY" in capsys.readouterr().err
