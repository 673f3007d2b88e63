"""From URLs to pixels: local-files, Label Studio paths, http(s), cache, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from tests.support.image_server import ImageServer
from yolo_backend.errors import MediaAccessDenied, MediaError
from yolo_backend.labelstudio.ls_auth import LabelStudioAuth, is_personal_access_token, jwt_expiry
from yolo_backend.media.fetcher import DiskCache, MediaFetcher, open_image

TOKEN = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), "red").save(docs / "sub" / "a.png")
    (tmp_path / "secret.png").write_bytes((docs / "sub" / "a.png").read_bytes())
    return docs


def fetcher(tmp_path: Path, base_url: str = "http://127.0.0.1:9", local_root: str = "", key: str = TOKEN,
            max_pixels: int = 10_000_000, allowed_hosts: str = "") -> MediaFetcher:
    cache = DiskCache(tmp_path / "cache", 10 * 2**20)
    return MediaFetcher(LabelStudioAuth(base_url, key), cache, local_root=local_root, timeout=5, max_pixels=max_pixels,
                        allowed_hosts=allowed_hosts)


def test_local_files_are_read_from_the_document_root(tmp_path: Path, root: Path) -> None:
    image = fetcher(tmp_path, local_root=str(root)).load("/data/local-files/?d=sub/a.png")
    assert (image.width, image.height) == (40, 30)
    assert image.pixels.shape == (30, 40, 3)
    assert tuple(image.pixels[0, 0]) == (0, 0, 255)  # BGR


def test_local_files_with_host_prefix(tmp_path: Path, root: Path) -> None:
    path = fetcher(tmp_path, local_root=str(root)).local_path("http://ls:8080/data/local-files/?d=sub%2Fa.png")
    assert path == (root / "sub" / "a.png").resolve()


@pytest.mark.parametrize("d", ["../secret.png", "sub/../../secret.png", "%2e%2e/secret.png", "/etc/passwd"])
def test_traversal_out_of_the_document_root_is_refused(tmp_path: Path, root: Path, d: str) -> None:
    with pytest.raises(MediaError):
        fetcher(tmp_path, local_root=str(root)).local_path(f"/data/local-files/?d={d}")


def test_symlink_pointing_out_of_the_root_is_refused(tmp_path: Path, root: Path) -> None:
    os.symlink(tmp_path / "secret.png", root / "link.png")
    with pytest.raises(MediaAccessDenied):
        fetcher(tmp_path, local_root=str(root)).local_path("/data/local-files/?d=link.png")


def test_label_studio_paths_are_downloaded_with_the_token_and_cached(tmp_path: Path, root: Path) -> None:
    served = tmp_path / "srv" / "data" / "upload" / "sub"
    served.mkdir(parents=True)
    (served / "a.png").write_bytes((root / "sub" / "a.png").read_bytes())
    server = ImageServer(tmp_path / "srv", token=TOKEN)
    try:
        media = fetcher(tmp_path, base_url=server.url)
        first = media.load("/data/upload/sub/a.png")
        second = media.load("/data/upload/sub/a.png")
        assert (first.width, second.width) == (40, 40)
        assert len(server.requests) == 1, "the second load must come from the cache"
        assert server.requests[0][1]["Authorization"] == f"Token {TOKEN}"
    finally:
        server.close()


def test_wrong_token_gives_a_clear_error(tmp_path: Path, root: Path) -> None:
    server = ImageServer(root, token=TOKEN)
    try:
        with pytest.raises(MediaError, match=r"401.*LABEL_STUDIO_API_KEY"):
            fetcher(tmp_path, base_url=server.url, key="f" * 40).load("/data/upload/sub/a.png")
    finally:
        server.close()


def test_foreign_hosts_never_receive_the_token(tmp_path: Path, root: Path) -> None:
    server = ImageServer(root)
    try:
        # a second loopback server is private: reachable only when MEDIA_ALLOWED_HOSTS names it
        host_port = server.url.split("//")[1]
        fetcher(tmp_path, base_url="http://127.0.0.1:9", allowed_hosts=host_port).load(f"{server.url}/sub/a.png")
        assert "Authorization" not in server.requests[0][1]
    finally:
        server.close()


def test_unreachable_host_and_missing_file(tmp_path: Path, root: Path) -> None:
    media = fetcher(tmp_path, local_root=str(root))
    with pytest.raises(MediaError, match="could not download"):
        media.load("http://127.0.0.1:9/data/upload/x.png")
    with pytest.raises(MediaError, match="not found"):
        media.load("/data/local-files/?d=sub/missing.png")
    with pytest.raises(MediaError, match="scheme"):
        media.load("ftp://host/x.png")
    with pytest.raises(MediaError, match="no image URL"):
        media.load(None)  # type: ignore[arg-type]


def test_cloud_urls_go_through_label_studio_presign(tmp_path: Path, root: Path) -> None:
    server = ImageServer(root, token=TOKEN)
    try:
        with pytest.raises(MediaError, match="HTTP 404"):
            fetcher(tmp_path, base_url=server.url).load("s3://bucket/a.png", task_id=7)
        path, headers = server.requests[0]
        assert path.startswith("/tasks/7/presign/?fileuri=") and headers["Authorization"] == f"Token {TOKEN}"
    finally:
        server.close()


def test_corrupt_truncated_and_non_images_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    Image.new("RGB", (200, 200), "blue").save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for path in (truncated, text):
        with pytest.raises(MediaError):
            open_image(path, 10_000_000)


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("1", (5000, 5000)).save(big)
    with pytest.raises(MediaError, match="MAX_IMAGE_PIXELS"):
        open_image(big, 1_000_000)


@pytest.mark.parametrize("orientation, size", [(1, (60, 40)), (3, (60, 40)), (6, (40, 60)), (8, (40, 60))])
def test_exif_orientation_gives_the_displayed_size(tmp_path: Path, orientation: int, size: tuple) -> None:
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (60, 40), "white").save(path, exif=exif)
    assert open_image(path, 10_000_000).size == size


def test_cache_stays_within_its_bound(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "c", max_bytes=10_000)
    for i in range(30):
        cache.put(f"url-{i}", [b"x" * 1000])
    total = sum(f.stat().st_size for f in (tmp_path / "c").iterdir())
    assert total <= 10_000
    assert cache.get("url-29") is not None and cache.get("url-0") is None


def test_token_kinds() -> None:
    assert not is_personal_access_token(TOKEN)
    assert is_personal_access_token("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2ln")
    assert jwt_expiry("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2ln") == 1700000000.0
    assert "0123" not in repr(LabelStudioAuth("http://x", TOKEN))
