"""Published Ultralytics weights, fetched once on first start so a new install pre-labels at once.

Only a name Ultralytics itself publishes (``yolov5nu.pt``, ``yolo11n-seg.pt``, ... its
``GITHUB_ASSETS_NAMES``) is fetched, from ``WEIGHTS_URL`` (its release folder, or a site's
mirror of it), with Ultralytics' own ``safe_download`` (Content-Length checked, partial
files removed). The file is then checked as a checkpoint (a zip archive whose every member
passes its CRC) and against a pinned sha256 before it replaces nothing: it is written beside
the target and renamed, so a truncated, corrupt or changed download is removed and reported,
never unpickled. Size and CRCs catch accidents; only the digest catches a swapped file, so a
name without a known digest (``PUBLISHED_SHA256``) is fetched only when ``WEIGHTS_SHA256``
names one, and a plain-http ``WEIGHTS_URL`` only with ``WEIGHTS_URL_INSECURE=true``.
Nothing else is ever downloaded at run time. ``python -m yolo_backend.serving.weights`` fetches at
image build time.
"""

from __future__ import annotations

import logging
import os
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from ..config import Settings
from ..core.filehash import sha256_of

log = logging.getLogger(__name__)

MIN_BYTES = 100_000  # Ultralytics' own floor for an asset: smaller is an error page, not weights

# sha256 of Ultralytics' release assets. The v8.3.0 and v8.4.0 releases carry the same files
# (yolo11n-pose.pt is pinned with this digest under both tags). None could be downloaded where
# this was written; each digest is copied from public manifests that pin it with the asset's URL,
# and agrees across several independent projects:
PUBLISHED_SHA256: dict[str, str] = {
    # a download script pinning .../releases/download/v8.4.0/yolov8n.pt (6,549,796 bytes), and lock
    # files and reproducibility reports of several other projects
    "yolov8n.pt": "f59b3d833e2ff32e194b5bb8e08d211dc7c5bdf144b90d2c8412c47ccfc83b36",
    # pinned with .../v8.4.0/yolo11n.pt in two download scripts and a checksum list (sha256sum --check)
    "yolo11n.pt": "0ebbc80d4a7680d14987a577cd21342b65ecfd94632bd9a8da63ae6417644ee1",
    # a catalogue recording it as "GitHub official release asset digest" of .../v8.4.0/yolo11n-seg.pt
    # (6,182,636 bytes), and a sha256sum --check line for the same URL
    "yolo11n-seg.pt": "55ed65c56c91713d23e8402371c6c49a6fd84f257f7dce452e8d70e41dcbe152",
    # pinned with .../v8.4.0/yolo11n-pose.pt in two download manifests, and for the v8.3.0 asset
    "yolo11n-pose.pt": "869e83fcdffdc7371fa4e34cd8e51c838cc729571d1635e5141e3075e9319dc0",
}
# No digest was found stated for yolov5nu.pt, the yolov8n/yolo11n -obb and -cls variants or
# yolov8n-seg/-pose: those are fetched only with WEIGHTS_SHA256 set (or put in MODEL_ROOT by hand).


class DownloadFailed(RuntimeError):
    """The weights could not be fetched or were not a checkpoint; the message says what to do instead."""


def published(name: str) -> bool:
    """Whether Ultralytics publishes a file of this name (the only names ever fetched)."""
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    return name in GITHUB_ASSETS_NAMES and name.endswith(".pt")


def can_fetch(settings: Settings, path: Path) -> bool:
    return settings.weights_download and published(path.name)


def expected_sha256(settings: Settings, name: str, setting: str = "WEIGHTS_SHA256") -> str | None:
    """The digest the fetched file must have: its ``setting``'s (WEIGHTS_SHA256, a site's own mirror of MODEL_PATH;
    ASSIST_SHA256 for the assist model), else the pinned one."""
    return getattr(settings, setting.lower()).lower() or PUBLISHED_SHA256.get(name)


def fetch(settings: Settings, path: Path, setting: str = "WEIGHTS_SHA256") -> Path:
    """Download ``path.name`` from WEIGHTS_URL to ``path``; DownloadFailed with the way out otherwise.

    ``setting``: the one giving this file's sha256 (ASSIST_SHA256 for the assist model).
    """
    from ultralytics.utils.downloads import safe_download

    url = f"{settings.weights_url.rstrip('/')}/{path.name}"
    host = urlsplit(url).netloc or url
    part = path.with_name(f".{path.name}.part")
    manual = f"put {path.name} at {path} yourself (from {url}), or set MODEL_PATH to a checkpoint under MODEL_ROOT"
    expected = _refuse_before_download(settings, url, path, manual, setting)
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
    actual = sha256_of(part)
    if actual != expected:
        part.unlink(missing_ok=True)
        raise DownloadFailed(f"{path.name} from {host} has sha256 {actual}, not the expected {expected} "
                             f"(a changed or substituted file), removed: {manual}")
    os.replace(part, path)
    log.info("downloaded %s from %s (%.1f MB, sha256 %s)", path.name, host, path.stat().st_size / 2**20, expected)
    return path


def _refuse_before_download(settings: Settings, url: str, path: Path, manual: str, setting: str) -> str:
    """The expected digest; DownloadFailed when the URL is plain http or no digest is known."""
    if urlsplit(url).scheme != "https" and not settings.weights_url_insecure:
        raise DownloadFailed(f"WEIGHTS_URL {settings.weights_url} is not https, so {path.name} was not fetched "
                             f"(set WEIGHTS_URL_INSECURE=true for a mirror on a trusted network): {manual}")
    expected = expected_sha256(settings, path.name, setting)
    if expected is None:
        raise DownloadFailed(f"{path.name} has no known sha256, so it was not fetched: set {setting} to the "
                             f"sha256 of the file you trust, or put {path.name} in MODEL_ROOT ({path}) yourself")
    return expected


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
    """``python -m yolo_backend.serving.weights [NAME]``: fetch MODEL_PATH (or NAME) into MODEL_ROOT.

    The same fetch the service would make.
    """
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
    if expected_sha256(settings, path.name) is None:
        print(f"{path.name} has no known sha256: set WEIGHTS_SHA256 to the digest of the file you trust, or put it "
              f"at {path} yourself; nothing fetched", file=sys.stderr)
        return 3  # the Docker build goes on without baked weights; /health then says the same
    try:
        fetch(settings, path)
    except DownloadFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
