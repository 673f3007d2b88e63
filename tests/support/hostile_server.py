"""A real HTTP server on loopback that misbehaves on purpose, for the hardening tests.

Paths: ``/img/<name>`` serves ``files[name]``; ``/redirect?to=<url>`` answers 302;
``/loop`` redirects to itself; ``/hang`` never answers; ``/slow`` sends headers, then
one byte every half second (``dribble_cut`` tells whether a client hung up on it);
``/status/<code>`` answers that code; ``/flaky/<name>`` answers 503 to the first
``fail_first`` requests, then serves ``files[name]``. Every request is recorded with its headers.
Each path also works under ``/data/upload/`` (``/data/upload/status/500``), so a stand-in
Label Studio can misbehave on a media route: the service sends its token to no other Label Studio path.
"""

from __future__ import annotations

import http.server
import threading
import time
from urllib.parse import parse_qs, urlsplit

from tests.support.quiet_handler import QuietHandler


class _Handler(QuietHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        state["requests"].append((self.path, dict(self.headers)))
        parts = urlsplit(self.path)
        head, _, rest = parts.path.removeprefix("/data/upload").lstrip("/").partition("/")
        if head == "img" and rest in state["files"]:
            return self._send(200, state["files"][rest])
        if head == "redirect":
            return self._send(302, b"", {"Location": parse_qs(parts.query)["to"][0]})
        if head == "loop":
            return self._send(302, b"", {"Location": "/loop"})
        if head == "hang":
            self.server.stop.wait(120)
            return None
        if head == "slow":
            return self._dribble()
        if head == "status":
            return self._send(int(rest), b'{"detail": "nope"}')
        if head == "flaky":
            state["flaky_seen"] = state.get("flaky_seen", 0) + 1
            if state["flaky_seen"] <= state["fail_first"]:
                return self._send(503, b"busy")
            return self._send(200, state["files"][rest])
        return self._send(404, b"not found")

    def _dribble(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        for _ in range(240):
            if self.server.stop.wait(0.5):
                return
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:  # the client closed the connection
                self.server.state["dribble_cut"] = True
                return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    state: dict
    stop: threading.Event


class HostileServer:
    """``with HostileServer(files={"a.png": data}) as s: s.url``."""

    def __init__(self, files: dict[str, bytes] | None = None, fail_first: int = 0) -> None:
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.state = {"requests": [], "files": dict(files or {}), "fail_first": fail_first}
        self.httpd.stop = threading.Event()
        self.host_port = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"http://{self.host_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def dribble_cut(self) -> bool:
        """Whether a client hung up on ``/slow`` before it had sent everything."""
        return bool(self.httpd.state.get("dribble_cut"))

    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        return self.httpd.state["requests"]

    def close(self) -> None:
        self.httpd.stop.set()
        time.sleep(0.05)
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
