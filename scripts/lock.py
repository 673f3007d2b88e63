"""Refresh the lock files (``make lock``): the exact versions, with hashes, that CI tests and users install.

Three locks, each compiled by ``uv pip compile`` from the ranges beside it:

- ``locks/requirements.txt``: the service (from ``requirements.txt``);
- ``locks/requirements-test.txt``: the service plus the test tools (from ``requirements-test.txt``,
  constrained to the service lock, so both install the same version of every shared package);
- ``locks/label-studio.txt``: the Label Studio the tests, ``make demo`` and compose run (from
  ``requirements-label-studio.txt``; it lives in its own venv).

Torch is chosen per hardware (``locks/torch.txt`` is this machine's CPU/CUDA default; the Dockerfile
takes the CPU index), so torch, torchvision and what only they need are left out of the locks:
install torch first, then the lock. The locks are universal (every platform, Python >= 3.10).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.locks import name_of  # noqa: E402  (one reader of the lock format)

TORCH = "locks/torch.txt"
MIN_PYTHON = "3.10"
PER_HARDWARE = {"torch", "torchvision"}  # installed before a lock, from the index that fits the machine


@dataclass(frozen=True)
class Lock:
    output: str
    source: str
    constraints: tuple[str, ...] = ()


LOCKS = (
    Lock("locks/requirements.txt", "requirements.txt", (TORCH,)),
    Lock("locks/requirements-test.txt", "requirements-test.txt", (TORCH, "locks/requirements.txt")),
    Lock("locks/label-studio.txt", "requirements-label-studio.txt"),
)


def uv() -> str:
    """The uv executable: beside this Python (``make lock`` installs it into the venv), else on PATH."""
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.is_file() else shutil.which("uv")
    if not found:
        raise SystemExit("uv is needed: pip install uv")
    return found


def compile_lock(lock: Lock, extra: list[str], upgrade: bool) -> str:
    """The text of one lock; ``extra`` are more uv options. Kept pins stay unless ``upgrade``."""
    with tempfile.TemporaryDirectory(prefix="lock-") as scratch:
        output = Path(scratch) / "lock.txt"
        if (ROOT / lock.output).is_file() and not upgrade:
            shutil.copyfile(ROOT / lock.output, output)  # uv keeps the versions it finds there
        command = [uv(), "pip", "compile", lock.source, "--universal", "--python-version", MIN_PYTHON,
                   "--custom-compile-command", "make lock", "--quiet", "--output-file", str(output), *extra]
        for constraint in lock.constraints:
            command += ["--constraint", constraint]
        if upgrade:
            command.append("--upgrade")
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
        return output.read_text()


def dependents(text: str) -> dict[str, set[str]]:
    """Each package of a compiled file and what requires it (uv's ``# via`` annotations)."""
    graph: dict[str, set[str]] = {}
    current = ""
    for line in text.splitlines():
        head = re.match(r"^([A-Za-z0-9_.\-]+)==", line)
        if head:
            current = name_of(head.group(1))
            graph.setdefault(current, set())
            continue
        via = re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9_.\-]+|-[rc] \S+)\s*$", line)
        if current and via and via.group(1) != "via":
            graph[current].add(via.group(1) if via.group(1).startswith("-") else name_of(via.group(1)))
    return graph


def torch_only(graph: dict[str, set[str]]) -> set[str]:
    """Torch, torchvision and every package nothing else needs (the CUDA wheels, triton, ...)."""
    dropped = {name for name in graph if name in PER_HARDWARE}
    changed = True
    while changed:
        changed = False
        for name, needed_by in graph.items():
            if name in dropped or not needed_by:
                continue
            if all(by in dropped or by.startswith(f"-c {TORCH}") for by in needed_by):
                dropped.add(name)
                changed = True
    return dropped


def write(lock: Lock, upgrade: bool) -> None:
    """Compile once annotated to find what only torch needs, then again with hashes, leaving that out."""
    skip = sorted(torch_only(dependents(compile_lock(lock, [], upgrade))))
    extra = ["--generate-hashes"]
    for name in skip:
        extra += ["--no-emit-package", name]
    text = compile_lock(lock, extra, upgrade)
    (ROOT / lock.output).write_text(text)
    print(f"{lock.output}: {text.count('==')} pins, left to the torch install: {', '.join(skip) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="newest versions the ranges allow (else keep pins)")
    args = parser.parse_args(argv)
    (ROOT / "locks").mkdir(exist_ok=True)
    for lock in LOCKS:
        write(lock, args.upgrade)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
