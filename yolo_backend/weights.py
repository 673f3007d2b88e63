"""Published Ultralytics weights, fetched once on first start so a new install pre-labels at once.

Only a name Ultralytics itself publishes (``yolov5nu.pt``, ``yolo11n-seg.pt``, ... its
``GITHUB_ASSETS_NAMES``) is fetched, from ``WEIGHTS_URL`` (its release folder, or a site's
mirror of it), with Ultralytics' own ``safe_download`` (Content-Length checked, partial
files removed). The file is then checked as a checkpoint (a zip archive whose every member
passes its CRC) before it replaces nothing: it is written beside the target and renamed,
so a truncated or corrupt download is removed and reported, never loaded. Nothing else is
ever downloaded at run time. ``python -m yolo_backend.weights`` fetches at image build time.
"""

from __future__ import annotations

import logging
import os
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from .config import Settings

log = logging.getLogger(__name__)

MIN_BYTES = 100_000  # Ultralytics' own floor for an asset: smaller is an error page, not weights


class DownloadFailed(RuntimeError):
    """The weights could not be fetched or were not a checkpoint; the message says what to do instead."""


def published(name: str) -> bool:
    """Whether Ultralytics publishes a file of this name (the only names ever fetched)."""
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    return name in GITHUB_ASSETS_NAMES and name.endswith(".pt")


def can_fetch(settings: Settings, path: Path) -> bool:
    return settings.weights_download and published(path.name)


def fetch(settings: Settings, path: Path) -> Path:
    """Download ``path.name`` from WEIGHTS_URL to ``path``; DownloadFailed with the way out otherwise."""
    from ultralytics.utils.downloads import safe_download

    url = f"{settings.weights_url.rstrip('/')}/{path.name}"
    host = urlsplit(url).netloc or url
    part = path.with_name(f".{path.name}.part")
    manual = f"put {path.name} at {path} yourself (from {url}), or set MODEL_PATH to a checkpoint under MODEL_ROOT"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        safe_download(url=url, file=part, unzip=False, retry=1, min_bytes=MIN_BYTES, progress=False)
    except Exception as exc:  # Ultralytics raises ConnectionError with the reason (404, offline, partial)
        part.unlink(missing_ok=True)
        reason = " ".join(str(exc).replace("❌", "").split())
        raise DownloadFailed(f"could not download {path.name} from {host} ({reason[:160]}): {manual}") from None
    problem = _not_a_checkpoint(part)
    if problem:
        part.unlink(missing_ok=True)
        raise DownloadFailed(f"{path.name} from {host} is not a usable checkpoint ({problem}), removed: {manual}")
    os.replace(part, path)
    log.info("downloaded %s from %s (%.1f MB)", path.name, host, path.stat().st_size / 2**20)
    return path


def _not_a_checkpoint(path: Path) -> str | None:
    """Why ``path`` is no torch checkpoint (size, not a zip, a member failing its CRC), or None."""
    size = path.stat().st_size if path.is_file() else 0
    if size < MIN_BYTES:
        return f"{size} bytes"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        return f"not a checkpoint archive: {exc}"
    return f"corrupt member {bad}" if bad else None


def main(argv: list[str] | None = None) -> int:
    """``python -m yolo_backend.weights [NAME]``: fetch MODEL_PATH (or NAME) into MODEL_ROOT, as the service would."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings.from_env()
    name = (argv if argv is not None else sys.argv[1:])[:1] or [settings.model_path]
    path = settings.model_root_path / name[0]
    if path.is_file():
        print(f"{path} is there")
        return 0
    if not published(path.name):
        print(f"{path.name} is not a published Ultralytics checkpoint; nothing to fetch", file=sys.stderr)
        return 2
    try:
        fetch(settings, path)
    except DownloadFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
