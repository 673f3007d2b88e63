"""Label Studio in its own virtual environment, and an empty migrated database to start it from quickly.

Its pins clash with the backend's, so it never goes into our venv: ``$LS_VENV``, default
``~/.cache/ls-yolo/label-studio-venv``, installed on first use and reused afterwards.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LS_VERSION = "1.23.2"
DEFAULT_VENV = Path.home() / ".cache" / "ls-yolo" / "label-studio-venv"
INSTALL_TIMEOUT_S = 900.0


class LabelStudioUnavailable(RuntimeError):
    """Label Studio could not be installed or started; the message says why and what to do."""


def venv_path() -> Path:
    return Path(os.environ.get("LS_VENV", str(DEFAULT_VENV))).expanduser()


def ensure_installed(venv: Path | None = None) -> Path:
    """The ``label-studio`` executable, installing Label Studio into ``venv`` when it is missing."""
    venv = venv or venv_path()
    exe = venv / "bin" / "label-studio"
    if exe.is_file():
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds it installed
        if not exe.is_file():
            _install(venv)
    return exe


def _install(venv: Path) -> None:
    python3 = shutil.which("python3") or sys.executable
    steps = ([python3, "-m", "venv", str(venv)],
             [str(venv / "bin" / "pip"), "install", "--quiet", f"label-studio=={LS_VERSION}"])
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise LabelStudioUnavailable(f"{' '.join(step)} took over {INSTALL_TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            raise LabelStudioUnavailable(
                f"installing Label Studio into {venv} failed ({' '.join(step[:3])} ...):\n{done.stderr[-2000:]}\n"
                f"install it by hand: python3 -m venv {venv} && {venv}/bin/pip install label-studio=={LS_VERSION}")


def migrated_database(exe: Path) -> Path:
    """An empty, fully migrated SQLite database for this Label Studio, built once and cached beside its venv.

    A fresh data dir costs about 55-115 s of migrations on 2 cores; a copy of this file makes a
    start take about 10 s. No user or organization is in it: ``start`` creates them.
    """
    venv = exe.parent.parent
    target = venv.parent / f"label-studio-{LS_VERSION}-migrated.sqlite3"
    if target.is_file():
        return target
    with (venv.parent / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the file
        if target.is_file():
            return target
        with tempfile.TemporaryDirectory(prefix="ls-migrate-") as work:
            manage = next(venv.glob("lib/python*/site-packages/label_studio/manage.py"))
            env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": work, "VIRTUAL_ENV": ""}
            done = subprocess.run([str(venv / "bin" / "python"), str(manage), "migrate", "--no-color", "-v", "0"],
                                  env=env, cwd=work, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
            database = Path(work) / "label_studio.sqlite3"
            if done.returncode != 0 or not database.is_file():
                raise LabelStudioUnavailable(f"migrating a Label Studio database failed:\n{done.stderr[-2000:]}")
            shutil.copyfile(database, target.with_suffix(".tmp"))
            os.replace(target.with_suffix(".tmp"), target)
    return target
