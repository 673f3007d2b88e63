"""Drift seen on purpose (``make deps-latest``): the newest versions the ranges allow, beside the locks.

Builds scratch venvs (not CI, not the project's ``.venv``), installs the newest versions that
``requirements-test.txt`` and ``requirements-label-studio.txt`` allow, prints which packages moved
from the locks, runs the fast suite against the new versions and checks that the newest Label
Studio stack still loads its settings (where a sentry-sdk release once broke it). A clean run says
``make lock LOCK_ARGS=--upgrade`` is safe; a failing one names what to pin before it is.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.locks import name_of, pins  # noqa: E402  (one reader of the lock format)

FAST = "not slow and not e2e and not browser and not redis"
NOT_HERE = "tests/test_locks.py::test_this_environment_is_the_test_lock"  # this venv is not the lock, on purpose


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, text=True, **kwargs)  # type: ignore[call-overload]


def scratch_venv(where: Path) -> Path:
    run([sys.executable, "-m", "venv", str(where)], check=True)
    run([str(where / "bin" / "pip"), "install", "--quiet", "--upgrade", "pip"], check=True)
    return where / "bin"


def installed(bin_dir: Path) -> dict[str, str]:
    listing = run([str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"], capture_output=True, check=True)
    found = {}
    for line in listing.stdout.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            found[name_of(name)] = version
    return found


def moved(lock: Path, now: dict[str, str]) -> list[str]:
    """``name locked -> newest`` for each locked package that the newest install gives at another version."""
    rows = []
    for name, versions in sorted(pins(lock).items()):
        locked = {str(version) for version, _ in versions}
        if name in now and now[name] not in locked:
            rows.append(f"  {name:32} {' / '.join(sorted(locked)):>16} -> {now[name]}")
    return rows


def backend(work: Path, pytest_args: list[str]) -> int:
    """The service and test tools at their newest; the fast suite on them."""
    bin_dir = scratch_venv(work / "backend")
    run([str(bin_dir / "pip"), "install", "--quiet", "-r", str(ROOT / "locks" / "torch.txt")], check=True)
    run([str(bin_dir / "pip"), "install", "--quiet", "--upgrade", "-r", str(ROOT / "requirements-test.txt")],
        check=True)
    run([str(bin_dir / "pip"), "install", "--quiet", "--no-deps", "-e", str(ROOT)], check=True)
    rows = moved(ROOT / "locks" / "requirements-test.txt", installed(bin_dir))
    print(f"\nbackend: {len(rows)} packages moved from locks/requirements-test.txt")
    print("\n".join(rows) or "  none")
    tests = run([str(bin_dir / "python"), "-m", "pytest", "-q", "-m", FAST, "-p", "no:cacheprovider",
                 "--durations=0", "--deselect", NOT_HERE, *pytest_args], cwd=ROOT, capture_output=True)
    failed = [line for line in tests.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    print(f"\nfast suite on the newest versions: {(tests.stdout.strip().splitlines() or ['?'])[-1]}")
    print("\n".join(failed))
    return tests.returncode


def label_studio(work: Path) -> int:
    """The newest stack the Label Studio range allows: does its Django project still load?"""
    bin_dir = scratch_venv(work / "label-studio")
    run([str(bin_dir / "pip"), "install", "--quiet", "--upgrade", "-r", str(ROOT / "requirements-label-studio.txt")],
        check=True)
    rows = moved(ROOT / "locks" / "label-studio.txt", installed(bin_dir))
    print(f"\nlabel-studio: {len(rows)} packages moved from locks/label-studio.txt")
    print("\n".join(rows) or "  none")
    manage = next((work / "label-studio").glob("lib/python*/site-packages/label_studio/manage.py"))
    check = run([str(bin_dir / "python"), str(manage), "check"], capture_output=True,
                env={**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(work / "ls-data"), "VIRTUAL_ENV": ""})
    print(f"label-studio settings load: {'ok' if check.returncode == 0 else 'FAILED'}")
    if check.returncode:
        print(check.stderr[-3000:])
    return check.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the venvs here and keep them (default: a temp dir)")
    parser.add_argument("--skip-label-studio", action="store_true")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (e.g. -x, a file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="deps-latest-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        status = backend(work, args.pytest_args)
        if not args.skip_label_studio:
            status |= label_studio(work)
    print("\ndeps-latest:", "the newest versions pass" if status == 0 else "something fails on the newest versions")
    return 1 if status else 0


if __name__ == "__main__":
    raise SystemExit(main())
