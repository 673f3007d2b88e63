"""Label Studio in its own virtual environment, installed from its lock, and an empty migrated database.

Its pins clash with the backend's, so it never goes into our venv. The venv and its migrated
database live under ``$TEST_CACHE`` (default ``~/.cache/ls-yolo``) in a folder named by a hash of
``locks/label-studio.txt``: a changed lock builds a new venv, so an old install can never stand in
for one the lock no longer gives (a venv installed weeks ago once hid a missing pin).
``$LS_VENV`` names a venv to use instead; it is still checked against the lock's hash and
reinstalled when it was built from another lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.model_cache import cache_dir

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "locks" / "label-studio.txt"
STAMP = ".lock-sha256"  # inside the venv: the hash of the lock it was installed from, written last
INSTALL_TIMEOUT_S = 900.0


class LabelStudioUnavailable(RuntimeError):
    """Label Studio could not be installed or started; the message says why and what to do."""


def lock_digest(lock: Path = LOCK) -> str:
    """The first 16 hex digits of the lock's sha256: the key of the venv built from it."""
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16]


def locked_version(lock: Path = LOCK) -> str:
    """The Label Studio version the lock installs."""
    found = re.search(r"^label-studio==([\w.]+)", lock.read_text(), re.MULTILINE)
    if not found:
        raise LabelStudioUnavailable(f"{lock} pins no label-studio")
    return found.group(1)


def venv_path(lock: Path = LOCK) -> Path:
    """``$LS_VENV``, else ``$TEST_CACHE/label-studio-<lock hash>/venv``."""
    if os.environ.get("LS_VENV"):
        return Path(os.environ["LS_VENV"]).expanduser()
    return cache_dir() / f"label-studio-{lock_digest(lock)}" / "venv"


def ensure_installed(venv: Path | None = None, lock: Path = LOCK) -> Path:
    """The ``label-studio`` executable of a venv installed from ``lock``, installing it when missing or stale."""
    venv = venv or venv_path(lock)
    exe = venv / "bin" / "label-studio"
    if _installed_from(venv) == lock_digest(lock):
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.install-lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a second process waits, then finds it installed
        if _installed_from(venv) != lock_digest(lock):
            _install(venv, lock)
    return exe


def _installed_from(venv: Path) -> str:
    try:
        return (venv / STAMP).read_text().strip()
    except OSError:
        return ""


def _install(venv: Path, lock: Path) -> None:
    """A new venv with exactly the locked packages (hash-checked); the stamp is written only on success."""
    shutil.rmtree(venv, ignore_errors=True)  # a half-built or stale venv is never reused
    python3 = shutil.which("python3") or sys.executable
    pip = str(venv / "bin" / "pip")
    steps = ([python3, "-m", "venv", str(venv)],
             [pip, "install", "--quiet", "--require-hashes", "--no-deps", "-r", str(lock)])
    env = {**os.environ, "VIRTUAL_ENV": ""}  # our venv must not leak into its pip
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            raise LabelStudioUnavailable(f"{' '.join(step)} took over {INSTALL_TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            raise LabelStudioUnavailable(
                f"installing Label Studio into {venv} failed ({' '.join(step[:3])} ...):\n{done.stderr[-2000:]}\n"
                f"install it by hand: python3 -m venv {venv} && {pip} install --require-hashes -r {lock}")
    (venv / STAMP).write_text(lock_digest(lock) + "\n")


def migrated_database(exe: Path) -> Path:
    """An empty, fully migrated SQLite database for this Label Studio, built once and cached beside its venv.

    A fresh data dir costs about 55-115 s of migrations on 2 cores; a copy of this file makes a
    start take about 10 s. No user or organization is in it: ``start`` creates them. The file is
    named by the venv's lock hash, so a database migrated by another Label Studio is never copied.
    """
    venv = exe.parent.parent
    target = venv.parent / f"label-studio-{_installed_from(venv) or 'unlocked'}-migrated.sqlite3"
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


if __name__ == "__main__":
    # `python3 -m tests.support.label_studio_install`: install and migrate now (standard library only, so
    # `make test` runs it with the system Python in the background while it builds our own venv).
    print(migrated_database(ensure_installed()))
