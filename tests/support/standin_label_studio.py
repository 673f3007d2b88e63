"""A tiny Label Studio on loopback: the project lookup the webhook makes, and what a run collects.

    ls = StandinLabelStudio({7: {"label_config": CONFIG, "tasks": tasks}})   # knows 7 only
    ls = StandinLabelStudio(known_all=True)                                  # knows every id
    ls.url, ls.token, ls.lookups (ids asked about), ls.close()

Answers, with ``Authorization: Token <token>`` only (else 401), as Label Studio 1.23 does:
``GET /api/projects/<id>/`` (the admission check, the SDK's ``projects.get``) and
``GET /api/tasks/?project=<id>&page=<n>&page_size=<k>`` (the SDK's ``tasks.list``, paged until
an empty page). ``delay`` makes every answer slow, for timeout tests.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "0123456789abcdef0123456789abcdef01234567"  # a legacy token: 40 hex, sent as "Token <key>"
PROJECT = re.compile(r"^/api/projects/(\d+)/?$")


class StandinLabelStudio:
    def __init__(self, projects: dict[int, dict[str, Any]] | None = None, known_all: bool = False,
                 token: str = TOKEN, delay: float = 0.0) -> None:
        self.projects = {int(k): v for k, v in (projects or {}).items()}
        self.known_all, self.token, self.delay = known_all, token, delay
        self.lookups: list[int] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="standin-label-studio").start()

    def project(self, pid: int) -> dict[str, Any] | None:
        if pid in self.projects:
            return self.projects[pid]
        return {"label_config": "<View/>", "tasks": []} if self.known_all else None

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        if self.delay:
            time.sleep(self.delay)
        if handler.headers.get("Authorization") != f"Token {self.token}":
            return _send(handler, 401, {"detail": "Authentication credentials were not provided."})
        url = urlparse(handler.path)
        match = PROJECT.match(url.path)
        if match:
            pid = int(match.group(1))
            self.lookups.append(pid)
            found = self.project(pid)
            if found is None:
                return _send(handler, 404, {"detail": "Not found."})
            return _send(handler, 200, {"id": pid, "title": f"project {pid}", "label_config": found["label_config"]})
        if url.path.rstrip("/") == "/api/tasks":
            query = parse_qs(url.query)
            found = self.project(int(query.get("project", ["0"])[0]))
            if found is None:
                return _send(handler, 404, {"detail": "Not found."})
            page, size = int(query.get("page", ["1"])[0]), int(query.get("page_size", ["100"])[0])
            tasks = found["tasks"][(page - 1) * size: page * size]
            return _send(handler, 200, {"tasks": tasks, "total": len(found["tasks"]), "total_annotations": 0,
                                        "total_predictions": 0})
        return _send(handler, 404, {"detail": "Not found."})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _send(handler: http.server.BaseHTTPRequestHandler, code: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
