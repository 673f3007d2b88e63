"""The one split rule: which side of a split each picture lands on, the same everywhere.

A split ranks groups of identical content, never tasks: the same picture in two tasks (a
re-import) would otherwise train a candidate and then judge it. Training's holdout and val,
``yolo-ls export-yolo``'s val and test, and the review's folds all take whole groups in rank
order (``groups``), so a picture lands on the same side everywhere, and a video's frames (grouped
by the video file's digest) stay together.
"""

from __future__ import annotations

import hashlib
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from .filehash import sha256_of

Item = TypeVar("Item")


def file_digest(source: Path) -> str:
    """The sha256 of a file's bytes (32 hex digits): the upright cache's key and what the split ranks."""
    return sha256_of(source)[:32]


def rank(key: Any, salt: str) -> float:
    """A group's stable place in [0, 1) for one split (``salt``); it never changes as the project grows."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def in_holdout(key: Any, fraction: float) -> bool:
    """Stable per group: a picture stays on its side of the split as the project grows."""
    return rank(key, "holdout") < fraction


def groups(items: Sequence[Item], salt: str, key: Callable[[Item], Any] = attrgetter("group")) -> list[list[Item]]:
    """``items`` gathered by ``key`` (an ``Example``'s content digest), the groups ordered by rank for ``salt``.

    The one rule of what stays together: ``split`` (holdout, val, export) and the review's
    folds all take whole groups, so identical pictures never sit on two sides.
    """
    gathered: dict[Any, list[Item]] = {}
    for item in items:
        gathered.setdefault(key(item), []).append(item)
    return [gathered[k] for k in sorted(gathered, key=lambda k: (rank(k, salt), str(k)))]


def split(items: Sequence[Item], fraction: float, floor: int = 1, salt: str = "holdout", keep: int = 0,
          key: Callable[[Item], Any] = attrgetter("group")) -> tuple[list[Item], list[Item]]:
    """(rest, held): every group ranked below ``fraction``, then the next-ranked groups until ``held`` has
    ``floor`` items, leaving at least ``keep`` groups in the rest.

    Both rules pick the lowest ranks, so a picture that trained a model never moves into a
    later holdout (which would flatter that model), however the project grows. ``items`` are
    training examples (grouped by content; a video's frames by the video's), or exported tasks in
    ``formats.yolo_export`` (``key`` reads the digest of one).
    """
    ordered = groups(items, salt, key)
    held = count = 0
    for group in ordered[:max(len(ordered) - keep, 0)]:
        if rank(key(group[0]), salt) >= fraction and count >= floor:
            break
        held, count = held + 1, count + len(group)
    return [i for g in ordered[held:] for i in g], [i for g in ordered[:held] for i in g]
