"""The Label Studio token goes only to Label Studio's media routes, on every hop.

A loopback stand-in Label Studio records every request with its ``Authorization``
header. Media routes serve a PNG (with the token); every other path answers 200 JSON as
its API would. Each refused case must be refused before any request is made, with its
reason; each allowed route must work with the token. The table in docs/hardening.md
("The token goes only to media routes") lists the same cases.
"""

from __future__ import annotations

import base64
import http.server
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.hostile_server import HostileServer
from tests.support.live_app import LiveApp
from tests.support.quiet_handler import QuietHandler
from tests.support.standin import CAR_CONFIG, png_bytes
from yolo_backend.errors import MediaError
from yolo_backend.labelstudio.ls_auth import LabelStudioAuth
from yolo_backend.media.fetcher import DiskCache, MediaFetcher
from yolo_backend.media.url_policy import task_id_text

TOKEN = "0123456789abcdef0123456789abcdef01234567"
MEDIA_MARKERS = ("/data/upload/", "/data/local-files", "/storage-data/uploaded/", "/presign/", "/resolve/")


class _StandInHandler(QuietHandler):
    server: _StandInServer

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        path = urlsplit(self.path).path
        if path in self.server.redirects:
            return self._send(302, b"", {"Location": self.server.redirects[path]})
        if not any(marker in path for marker in MEDIA_MARKERS):
            return self._send(200, b'{"api": "answered with our token"}', {"Content-Type": "application/json"})
        if self.headers.get("Authorization") != f"Token {TOKEN}":
            return self._send(401, b'{"detail": "no token"}')
        return self._send(200, png_bytes((8, 6)), {"Content-Type": "image/png"})



class _StandInServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, str | None]]
    redirects: dict[str, str]


@pytest.fixture()
def label_studio():
    """A stand-in Label Studio on loopback: ``.url``, ``.seen`` (raw path, Authorization), ``.redirects``."""
    server = _StandInServer(("127.0.0.1", 0), _StandInHandler)
    server.seen, server.redirects = [], {
        "/data/upload/1/redirect-to-api.png": "/api/users/",
        "/data/upload/1/redirect-to-dots.png": "/data/upload/%2e%2e/%2e%2e/api/users",
        "/data/upload/1/redirect-to-upload.png": "/data/upload/1/a.png",
    }
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def fetcher(tmp_path: Path, base_url: str, allowed: str = "") -> MediaFetcher:
    return MediaFetcher(LabelStudioAuth(base_url, TOKEN), DiskCache(tmp_path / "cache", 2**20), timeout=5,
                        allowed_hosts=allowed)


def assert_token_only_on_media_routes(seen: list[tuple[str, str | None]]) -> None:
    for path, authorization in seen:
        on_media = any(marker in urlsplit(path).path for marker in MEDIA_MARKERS)
        assert on_media or authorization is None, f"our token reached {path}"


# (image URL, task id, reason in the answer); the ids are the test ids in docs/hardening.md
REFUSED = [
    pytest.param("/api/projects/1/export?exportType=JSON", None, "is not a media route", id="api-export"),
    pytest.param("/api/users/", None, "is not a media route", id="api-users"),
    pytest.param("{ls}/api/users/", None, "is not a media route", id="absolute-api-url"),
    pytest.param("s3://bucket/a.png", "../api/x?", "not a non-negative integer", id="task-id-dotdot-query"),
    pytest.param("s3://bucket/a.png", "1/../../api/users", "not a non-negative integer", id="task-id-traversal"),
    pytest.param("/data/upload/%2e%2e/%2e%2e/api/users", None, "'..' segment", id="pct-2e2e"),
    pytest.param("/data/upload/%2E%2E%2F%2E%2E%2Fapi/users", None, "'..' segment", id="pct-upper-and-2f"),
    pytest.param("/data/upload/%252e%252e/%252e%252e/api/users", None, "'..' segment", id="pct-double"),
    pytest.param("/data/upload/../../api/users", None, "'..' segment", id="upload-dotdot"),
    pytest.param("/data/upload/./../api/users", None, "'..' segment", id="upload-dot-dotdot"),
    pytest.param("/data/upload/..\\..\\api\\users", None, "backslash", id="backslashes"),
    pytest.param("/data/upload/..%5c..%5capi%5cusers", None, "backslash", id="pct-5c"),
    pytest.param("//api/users", None, "empty segment", id="double-slash"),
    pytest.param("/data//upload/1/a.png", None, "empty segment", id="inner-double-slash"),
    pytest.param("/DATA/UPLOAD/1/a.png", None, "is not a media route", id="mixed-case"),
    pytest.param("/data/%75pload/1/a.png", None, "is not a media route", id="pct-in-route"),
    pytest.param("/tasks/1/presign/", None, r"lacks the \?fileuri=", id="presign-without-fileuri"),
    pytest.param("/tasks/x1/presign/?fileuri=czM6", None, "is not a media route", id="presign-non-integer"),
    pytest.param("/data/local-files/?x=1", None, r"lacks the \?d=", id="local-files-without-d"),
]


@pytest.mark.parametrize("url, task_id, reason", REFUSED)
def test_refused_paths_make_no_request(tmp_path: Path, label_studio, url: str, task_id: object,
                                       reason: str) -> None:
    with pytest.raises(MediaError, match=reason) as refused:
        fetcher(tmp_path, label_studio.url).load(url.format(ls=label_studio.url), task_id=task_id)
    message = str(refused.value)
    assert refused.value.status == 422
    assert "only sent to Label Studio's media routes" in message or "presign URL" in message
    assert label_studio.seen == [], "nothing may reach the stand-in"


@pytest.mark.parametrize("start", ["redirect-to-api", "redirect-to-dots"])
def test_a_redirect_from_a_media_route_to_the_api_is_refused(tmp_path: Path, label_studio, start: str) -> None:
    with pytest.raises(MediaError, match="refused a redirect to Label Studio path") as refused:
        fetcher(tmp_path, label_studio.url).load(f"/data/upload/1/{start}.png")
    assert refused.value.status == 422
    assert [path for path, _ in label_studio.seen] == [f"/data/upload/1/{start}.png"], "the API is never asked"
    assert_token_only_on_media_routes(label_studio.seen)


# (image URL, task id, path the stand-in sees)
ALLOWED = [
    pytest.param("/data/upload/1/a.png", None, "/data/upload/1/a.png", id="upload"),
    pytest.param("/data/upload/1/my%20photo.png", None, "/data/upload/1/my%20photo.png", id="upload-encoded-name"),
    pytest.param("{ls}/data/upload/1/a.png", None, "/data/upload/1/a.png", id="absolute-upload"),
    pytest.param("/data/local-files/?d=images/a.png", None, "/data/local-files/?d=images/a.png", id="local-files"),
    pytest.param("/data/local-files?d=images/a.png", None, "/data/local-files?d=images/a.png",
                 id="local-files-no-slash"),
    pytest.param("/storage-data/uploaded/?filepath=upload/1/a.png", None,
                 "/storage-data/uploaded/?filepath=upload/1/a.png", id="storage-data"),
    pytest.param("s3://bucket/a.png", 7, "/tasks/7/presign/?fileuri=", id="cloud-int-id"),
    pytest.param("gs://bucket/a.png", "12", "/tasks/12/presign/?fileuri=", id="cloud-str-id"),
    pytest.param("/tasks/7/resolve/?fileuri=czM6Ly9iL2EucG5n", None, "/tasks/7/resolve/?fileuri=", id="task-resolve"),
    pytest.param("/projects/3/resolve/?fileuri=czM6Ly9iL2EucG5n", None, "/projects/3/resolve/?fileuri=",
                 id="project-resolve"),
    pytest.param("/projects/3/presign/?fileuri=czM6Ly9iL2EucG5n", None, "/projects/3/presign/?fileuri=",
                 id="project-presign"),
    pytest.param("/data/upload/1/redirect-to-upload.png", None, "/data/upload/1/a.png", id="redirect-within-media"),
]


@pytest.mark.parametrize("url, task_id, expected", ALLOWED)
def test_media_routes_are_fetched_with_the_token(tmp_path: Path, label_studio, url: str, task_id: object,
                                                 expected: str) -> None:
    image = fetcher(tmp_path, label_studio.url).load(url.format(ls=label_studio.url), task_id=task_id)
    assert (image.width, image.height) == (8, 6)
    path, authorization = label_studio.seen[-1]
    assert path.startswith(expected) and authorization == f"Token {TOKEN}"
    assert_token_only_on_media_routes(label_studio.seen)


def test_the_presign_route_gets_the_cloud_url_and_its_redirect_gets_no_token(tmp_path: Path, label_studio) -> None:
    with HostileServer({"a.png": png_bytes((8, 6))}) as bucket:
        label_studio.redirects["/tasks/7/presign/"] = f"{bucket.url}/img/a.png"
        assert fetcher(tmp_path, label_studio.url, allowed=bucket.host_port).load("s3://b/a.png", 7).width == 8
        query = parse_qs(urlsplit(label_studio.seen[0][0]).query)
        assert base64.urlsafe_b64decode(query["fileuri"][0]).decode() == "s3://b/a.png"
        assert "Authorization" not in bucket.requests[0][1]


def test_label_studio_under_a_sub_path_keeps_its_prefix(tmp_path: Path, label_studio) -> None:
    assert fetcher(tmp_path, f"{label_studio.url}/ls").load("/data/upload/1/a.png").width == 8
    assert label_studio.seen == [("/ls/data/upload/1/a.png", f"Token {TOKEN}")]
    with pytest.raises(MediaError, match="outside LABEL_STUDIO_URL's path"):
        fetcher(tmp_path / "b", f"{label_studio.url}/ls").load(f"{label_studio.url}/data/upload/1/a.png")
    assert len(label_studio.seen) == 1


@pytest.mark.parametrize("task_id", ["../api/x?", "1/../../api/users", -1, "-1", True, 1.5, " 7", "7 ", "\uff17",
                                     "1e3", "0x7", "", [7], "7/"])
def test_task_ids_that_are_not_non_negative_integers_are_refused(task_id: object) -> None:
    with pytest.raises(MediaError, match="not a non-negative integer"):
        task_id_text(task_id)


@pytest.mark.parametrize("task_id, text", [(0, "0"), (7, "7"), ("7", "7"), ("0012", "0012"), (10**20, str(10**20))])
def test_task_ids_that_are_integers_pass(task_id: object, text: str) -> None:
    assert task_id_text(task_id) == text


def test_predict_answers_the_refusal_and_keeps_the_other_tasks(tmp_path: Path, label_studio) -> None:
    live = LiveApp(tmp_path, label_studio_url=label_studio.url, label_studio_api_key=TOKEN)
    try:
        one = requests.post(f"{live.url}/predict", timeout=20, json={
            "tasks": [{"id": 1, "data": {"image": "/api/projects/1/export?exportType=JSON"}}],
            "label_config": CAR_CONFIG})
        assert one.status_code == 422 and "is not a media route" in one.json()["message"]
        tasks = [{"id": 2, "data": {"image": "/api/users/"}},
                 {"id": "../api/x?", "data": {"image": "s3://bucket/a.png"}},
                 {"id": 4, "data": {"image": "/data/upload/1/a.png"}}]
        many = requests.post(f"{live.url}/predict", timeout=20, json={"tasks": tasks, "label_config": CAR_CONFIG})
        assert many.status_code == 200
        results = many.json()["results"]
        assert results[:2] == [[], []] and len(results[2]["result"]) == 1, "the refused get nothing, the good its box"
        assert [path for path, _ in label_studio.seen] == ["/data/upload/1/a.png"]
    finally:
        live.close()
