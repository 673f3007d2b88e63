"""The sha256 of a file, streamed: one piece of code for every content key (checkpoints, exports, images)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of(path: Path) -> str:
    """Hex sha256 of ``path``'s bytes, read in 1 MiB blocks (a large file never sits in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
