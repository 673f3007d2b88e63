"""A real HTTP server on loopback serving files from a folder, recording request headers.

Stands in for the image hosts a task URL may point at; ``require_token`` makes it
answer 401 unless ``Authorization: Token <token>`` is sent, as Label Studio does.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, server_state: dict, **kwargs) -> None:
        self.state = server_state
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.state["requests"].append((self.path, dict(self.headers)))
        token = self.state.get("token")
        if token and self.headers.get("Authorization") != f"Token {token}":
            self.send_error(401)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


class ImageServer:
    def __init__(self, folder: Path, token: str | None = None) -> None:
        self.state: dict = {"requests": [], "token": token}
        handler = functools.partial(_Handler, directory=str(folder), server_state=self.state)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def requests(self) -> list:
        return self.state["requests"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
