"""Progress bars for the batch commands: shown on a terminal, silent in logs and tests."""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")
MIN_ITEMS = 50  # shorter runs finish before a bar would tell anything


def bar(items: Iterable[T], desc: str, unit: str, total: int | None = None, show: bool | None = None) -> tqdm:
    """A tqdm bar with rate and time remaining; ``show`` None means: only on a terminal, for long runs."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if show is None:
        show = _terminal() and (total is None or total >= MIN_ITEMS)
    return tqdm(items, desc=desc, unit=unit, total=total, disable=not show, dynamic_ncols=True)


def _terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())
