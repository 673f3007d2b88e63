"""The request handler base the loopback stand-in servers share: one way to answer, no access log."""

from __future__ import annotations

import http.server


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """``_send(code, body, headers)`` answers with a Content-Length; nothing is printed per request."""

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass
