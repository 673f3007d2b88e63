"""From a task's image URL to pixels in the orientation the browser shows.

Every URL kind Label Studio puts in tasks is handled here:
``/data/local-files/?d=...`` (read from ``LOCAL_FILES_DOCUMENT_ROOT`` when set),
``/data/upload/...`` and Label Studio's other media routes, plain http(s), and cloud URLs
(``s3://``, ``gs://``, ``azure-blob://``) presigned by Label Studio. The token goes only to
those media routes (``url_policy.check_token_route``), on every redirect hop.
Downloads land in a size-bounded disk cache, so a task opened twice is fetched once.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import numpy as np
import requests
import urllib3
from PIL import Image, ImageOps, UnidentifiedImageError

from ..config import Settings
from ..errors import MediaAccessDenied, MediaError
from ..labelstudio.ls_auth import LabelStudioAuth
from .decode_budget import BudgetExceeded, Claimant, DecodeBudget, Lease, decode_cost
from .image_modes import to_rgb
from .url_policy import CheckedAdapter, UrlPolicy, check_token_route, same_origin, task_id_text

log = logging.getLogger(__name__)

CLOUD_SCHEMES = ("s3", "gs", "gcs", "azure-blob")
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
CHUNK = 1 << 16
RETRY_STATUSES = (502, 503, 504)  # a restarting or overloaded Label Studio / proxy: worth another try
RETRY_BACKOFF_S = (0.5, 1.5)  # two retries; the whole /predict must stay far below Label Studio's 100 s
MAX_REDIRECTS = 5  # each hop is checked against the URL policy again
CONNECT_TIMEOUT = 5.0  # a host that never accepts fails fast; HTTP_TIMEOUT bounds each read
STRIP_ROWS = 256  # rows converted to BGR at a time: the whole image never exists twice as bytes
# Pillow allocates pixels in blocks of 16 MB, under glibc's mmap threshold (up to 32 MB): freed, they stayed
# in malloc's heap, and a request of 100 Mpx images grew RSS 40 % past DECODE_BUDGET_MB. Blocks of 64 MB
# are mapped, so a decoded image's memory goes back to the system when it is released.
PIL_BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class LoadedImage:
    """Decoded pixels (BGR, as Ultralytics expects arrays), the displayed size, and their share of DECODE_BUDGET_MB."""

    pixels: np.ndarray
    width: int
    height: int
    lease: Lease | None = None

    def release(self) -> None:
        """The pixels are no longer needed (detections made): their bytes go back to the budget."""
        if self.lease is not None:
            self.lease.release()


def url_host(url: str) -> str:
    """Host part for logs: never the path or query, which may carry tokens."""
    return urlsplit(url).hostname or "label-studio"


def within(root: Path, candidate: Path) -> Path:
    """``candidate`` resolved (symlinks followed), refused unless it stays inside ``root``."""
    try:
        resolved = candidate.resolve()
    except (ValueError, OSError, RuntimeError) as exc:  # NUL bytes; symlink loops (RuntimeError before 3.13)
        raise MediaAccessDenied(f"unusable path {candidate.name!r}: {exc}") from None
    if not resolved.is_relative_to(root.resolve()):
        raise MediaAccessDenied(f"path {candidate.name!r} resolves outside the allowed root")
    return resolved


@contextmanager
def _opened(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """``path`` opened (header only), bombs refused; decoding errors inside become MediaError."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise MediaError(f"image of {width}x{height} pixels exceeds MAX_IMAGE_PIXELS={max_pixels}")
            img.seek(0)  # first frame of animations
            yield img
    except MediaError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, ImportError) as exc:
        # ImportError: Ultralytics patches Image.open to load pi-heif on unknown files (a requirement; belt and braces)
        raise MediaError(f"not a readable image: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaError(f"corrupt or truncated image: {exc}") from None


def open_image(path: Path, max_pixels: int) -> Image.Image:
    """Decode ``path`` as RGB with its EXIF orientation applied; refuse bombs and non-images."""
    with _opened(path, max_pixels) as img:
        img.load()
        return to_rgb(ImageOps.exif_transpose(img))


def decode(path: Path, max_pixels: int, reserve: Callable[[int, int, str], Lease | None]) -> LoadedImage:
    """BGR pixels of ``path``, upright, after ``reserve(width, height, mode)`` granted what decoding costs.

    Peak about 8 bytes a pixel (PIL's 4, BGR's 3, one strip): the PIL image is dropped as soon as
    its pixels are copied out; the lease then shrinks to the array it keeps.
    """
    with _opened(path, max_pixels) as img:
        lease = reserve(img.width, img.height, img.mode)
        try:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            rgb = to_rgb(img)
            if rgb is not img:
                img.close()
            pixels = to_bgr(rgb)
            rgb.close()
        except BaseException:
            if lease is not None:
                lease.release()
            raise
    if lease is not None:
        lease.shrink(pixels.nbytes)
    return LoadedImage(pixels, pixels.shape[1], pixels.shape[0], lease)


def to_bgr(img: Image.Image) -> np.ndarray:
    """OpenCV's channel swap, a strip at a time: a whole-image ``np.asarray`` would copy the image twice over."""
    import cv2

    width, height = img.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, STRIP_ROWS):
        strip = np.asarray(img.crop((0, top, width, min(height, top + STRIP_ROWS))))
        cv2.cvtColor(strip, cv2.COLOR_RGB2BGR, dst=out[top:top + len(strip)])
    return out


class DiskCache:
    """Files keyed by URL, evicted oldest-first once ``max_bytes`` is passed."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        self._size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())

    def path_for(self, key: str) -> Path:
        return self.folder / hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str) -> Path | None:
        path = self.path_for(key)
        if path.is_file():
            os.utime(path)  # mark as recently used
            return path
        return None

    def put(self, key: str, chunks: iter[bytes]) -> Path:  # type: ignore[valid-type]
        """Write atomically: a crash leaves a stray temp file, never a half image under the key."""
        target = self.path_for(key)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".part-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    out.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            self._size += size
            if self._size > self.max_bytes:
                self._evict(keep=target)
        return target

    def _evict(self, keep: Path | None = None) -> None:
        """Oldest first down to 90 % of the bound; never ``keep``, the file a caller is about to read."""
        files = sorted((f for f in self.folder.iterdir() if f.is_file() and f != keep), key=lambda f: f.stat().st_mtime)
        kept = keep.stat().st_size if keep is not None and keep.is_file() else 0
        self._size = kept + sum(f.stat().st_size for f in files)
        for f in files:
            if self._size <= self.max_bytes * 0.9:
                break
            self._size -= f.stat().st_size
            f.unlink(missing_ok=True)


class MediaFetcher:
    """Turns task image URLs into local files and decoded images."""

    def __init__(
        self,
        auth: LabelStudioAuth,
        cache: DiskCache,
        local_root: str = "",
        timeout: float = 15.0,
        max_pixels: int = 100_000_000,
        allowed_hosts: str = "",
        max_video_bytes: int = 500 * 2**20,
        decode_budget: DecodeBudget | None = None,
    ) -> None:
        self.auth = auth
        self.cache = cache
        self.local_root = Path(local_root).resolve() if local_root else None
        self.timeout = timeout
        self.max_pixels = max_pixels
        self.max_video_bytes = max_video_bytes
        self.budget = decode_budget or DecodeBudget(1024 * 2**20)
        if "PILLOW_BLOCK_SIZE" not in os.environ:  # Pillow's own setting wins
            Image.core.set_block_size(PIL_BLOCK_BYTES)
        self.policy = UrlPolicy.build(auth.base_url, allowed_hosts)
        self._session = requests.Session()
        for prefix in ("http://", "https://"):
            self._session.mount(prefix, CheckedAdapter(self.policy))

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaFetcher:
        """The fetcher /predict and training share: local-files from disk, downloads cached in MODEL_DIR/cache."""
        auth = LabelStudioAuth(settings.label_studio_url, settings.label_studio_api_key, settings.http_timeout)
        return cls(auth, DiskCache(settings.cache_dir, settings.cache_max_mb * 2**20),
                   local_root=settings.local_files_document_root, timeout=settings.http_timeout,
                   max_pixels=settings.max_image_pixels, allowed_hosts=settings.media_allowed_hosts,
                   max_video_bytes=settings.max_video_mb * 2**20,
                   decode_budget=DecodeBudget(settings.decode_budget_mb * 2**20))

    def load(self, url: str, task_id: object = None, claimant: Claimant | None = None, turn: int = 0) -> LoadedImage:
        """The image at ``url`` decoded within DECODE_BUDGET_MB: waits its ``turn``; ``release()`` it when done.

        Every turn either reserves or is skipped, whatever fails, so the request's later images never wait on it.
        """
        claimant = claimant or self.budget.claimant()
        reserved = False

        def reserve(width: int, height: int, mode: str) -> Lease:
            nonlocal reserved
            reserved = True
            try:
                return claimant.reserve(turn, decode_cost(width, height, mode), f"image of {width}x{height} pixels")
            except BudgetExceeded as exc:
                raise MediaError(str(exc)) from None

        try:
            return decode(self.local_path(url, task_id), self.max_pixels, reserve)
        except BaseException:
            if not reserved:
                claimant.skip(turn)
            raise

    def local_path(self, url: str, task_id: object = None, what: str = "image") -> Path:
        """A readable file holding the image (or ``what``) at ``url``: local-files read in place, the rest cached."""
        if not isinstance(url, str) or not url.strip():
            raise MediaError(f"the task has no {what} URL")
        url = url.strip()
        local = self._local_files_path(url)
        if local is not None:
            return local
        cached = self.cache.get(url)
        if cached is not None:
            return cached
        return self.cache.put(url, self._download(url, task_id, what))

    def video_path(self, url: str, task_id: object = None) -> Path:
        """A video file on disk, streamed there in chunks; bigger than MAX_VIDEO_MB is refused."""
        path = self.local_path(url, task_id, what="video")
        size = path.stat().st_size
        if size > self.max_video_bytes:
            raise MediaError(f"video of {size / 2**20:.0f} MB is larger than MAX_VIDEO_MB "
                             f"({self.max_video_bytes // 2**20} MB)")
        return path

    def _local_files_path(self, url: str) -> Path | None:
        """Local-files URLs, read straight from the document root when it is mounted here."""
        parts = urlsplit(url)
        if self.local_root is None or not parts.path.rstrip("/").endswith("/data/local-files"):
            return None
        values = parse_qs(parts.query).get("d")
        if not values:
            raise MediaError("local-files URL without ?d=<path>")
        relative = values[0]
        path = within(self.local_root, self.local_root / relative.lstrip("/"))
        if os.path.isabs(relative) and not Path(relative).resolve().is_relative_to(self.local_root):
            raise MediaAccessDenied("absolute local-files path outside LOCAL_FILES_DOCUMENT_ROOT")
        if not path.is_file():
            raise MediaError(f"local file {relative!r} not found under LOCAL_FILES_DOCUMENT_ROOT")
        return path

    def _resolve(self, url: str, task_id: object) -> str:
        """The absolute URL to fetch; whether it may carry the token is checked per hop (``_token_for``)."""
        scheme = urlsplit(url).scheme.lower()
        base = self.auth.base_url
        if scheme in CLOUD_SCHEMES:
            if task_id is None:
                raise MediaError(f"{scheme}:// URL needs a task id for Label Studio to presign it")
            encoded = base64.urlsafe_b64encode(url.encode()).decode()
            return f"{base}/tasks/{task_id_text(task_id)}/presign/?fileuri={encoded}"
        if scheme in ("http", "https"):
            return url
        if scheme == "" and url.startswith("/"):
            return base + url  # a path on Label Studio; "//x" stays a doubled slash, refused as such
        raise MediaError(f"unsupported image URL scheme {scheme or url[:20]!r}")

    def _download(self, url: str, task_id: object, what: str = "image") -> iter[bytes]:  # type: ignore[valid-type]
        start = self._resolve(url, task_id)
        refreshed = False
        for backoff in (*RETRY_BACKOFF_S, None):
            answer, target = self._get_following_redirects(start)
            if answer.status_code == 401 and same_origin(target, self.auth.base_url) and not refreshed:
                self.auth.invalidate()  # an expired access token: refresh once
                refreshed = True
            elif answer.status_code not in RETRY_STATUSES or backoff is None:
                break
            answer.close()
            time.sleep(backoff or 0)
        if answer.status_code in (401, 403):
            hint = "set LABEL_STUDIO_API_KEY" if not self.auth.configured else "check LABEL_STUDIO_API_KEY"
            raise MediaError(f"{url_host(target)} answered {answer.status_code} for the {what}: {hint}")
        if answer.status_code != 200:
            raise MediaError(f"{url_host(target)} answered HTTP {answer.status_code} for the {what}")
        if what == "video":  # big files: bounded by size, and by time per MB rather than per file
            limit = self.max_video_bytes
            deadline = time.monotonic() + 4 * self.timeout * max(1.0, limit / MAX_DOWNLOAD_BYTES)
            return _bounded(answer, deadline, limit, "video", "MAX_VIDEO_MB")
        return _bounded(answer, time.monotonic() + 4 * self.timeout)

    def _get_following_redirects(self, target: str) -> tuple[requests.Response, str]:
        """GET with redirects followed by hand: every hop passes the URL policy and the token rule."""
        for hop in range(MAX_REDIRECTS + 1):
            self.policy.check_url(target)
            headers = self._token_for(target, redirect=hop > 0)
            try:
                answer = self._session.get(target, headers=headers, stream=True, allow_redirects=False,
                                           timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout))
            except requests.RequestException as exc:
                raise MediaError(f"could not download from {url_host(target)}: {type(exc).__name__}") from None
            if not answer.is_redirect:
                return answer, target
            answer.close()
            target = urljoin(target, answer.headers["Location"])
        raise MediaError(f"more than {MAX_REDIRECTS} redirects fetching the image from {url_host(target)}")

    def _token_for(self, url: str, redirect: bool) -> dict[str, str]:
        """The token for Label Studio's media routes; none elsewhere; its other paths are refused outright."""
        if not same_origin(url, self.auth.base_url):
            return {}
        check_token_route(url, self.auth.base_url, redirect)
        return self.auth.header()


def _bounded(answer: requests.Response, deadline: float, max_bytes: int = MAX_DOWNLOAD_BYTES, what: str = "image",
             setting: str = ""):
    """The body in chunks, refused past ``max_bytes`` or the deadline (a server dribbling bytes)."""
    total = 0
    with answer:
        try:
            while chunk := answer.raw.read1(CHUNK, decode_content=True):  # what arrived: deadline checked often
                total += len(chunk)
                if total > max_bytes:
                    raise MediaError(f"{what} larger than {max_bytes // 2**20} MB{f' ({setting})' if setting else ''}")
                if time.monotonic() > deadline:
                    raise MediaError(f"{url_host(answer.url)} sent the {what} too slowly")
                yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise MediaError(f"download from {url_host(answer.url)} broke off: {type(exc).__name__}") from None
