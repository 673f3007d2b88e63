"""Reading the lock files and the ranges they are compiled from (tests and ``make deps-latest``)."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def name_of(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def ranges(path: Path) -> list[Requirement]:
    """The requirements of a ranges file, following ``-r`` includes."""
    found: list[Requirement] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += ranges(path.parent / line[3:].strip())
        elif line:
            found.append(Requirement(line))
    return found


def pins(path: Path) -> dict[str, list[tuple[Version, str]]]:
    """Each locked package: its versions with their markers (a universal lock may fork by Python)."""
    locked: dict[str, list[tuple[Version, str]]] = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            locked.setdefault(name_of(match.group(1)), []).append((Version(match.group(2)), match.group(3) or ""))
    return locked


def hashed(path: Path) -> bool:
    """Every pin is followed by at least one sha256 (pip then checks every file it installs)."""
    blocks = re.split(r"\n(?=\S)", path.read_text())
    return all("--hash=sha256:" in block for block in blocks if PIN.match(block.splitlines()[0]))
