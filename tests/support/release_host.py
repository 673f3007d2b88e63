"""A loopback stand-in for Ultralytics' release host: serves named files, can hold, cut or corrupt them.

``files`` maps a name to its bytes; ``mode`` per name: ``"ok"``, ``"truncated"`` (Content-Length
of the whole file, half of it sent, then the connection closed), ``"corrupt"`` (the right
length, bytes in the middle flipped). ``gate`` holds every answer until it is set, so a test
can look at the service while its download is in flight.
"""

from __future__ import annotations

import http.server
import threading
from urllib.parse import urlsplit

from tests.support.quiet_handler import QuietHandler


class ReleaseHost:
    def __init__(self, files: dict[str, bytes], mode: dict[str, str] | None = None) -> None:
        self.files, self.mode = files, mode or {}
        self.requests: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        host = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                host.gate.wait(60)
                name = urlsplit(self.path).path.rsplit("/", 1)[-1]
                body = host.files.get(name)
                if body is None:
                    self._send(404, b"Not Found")
                    return
                how = host.mode.get(name, "ok")
                if how == "corrupt":
                    middle = len(body) // 2
                    body = body[:middle] + bytes(b ^ 0xFF for b in body[middle:middle + 4096]) + body[middle + 4096:]
                if how == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self._send(200, body, {"Content-Type": "application/octet-stream"})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ultralytics/assets/releases/download/v8.4.0"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()
