"""Logging setup: one format, level from LOG_LEVEL, secrets never printed; refusals logged once, not per request."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict

# Tokens in URLs (?token=..., presigned signatures) and auth headers are masked.
_SECRET = re.compile(
    r"((?:token|access_token|refresh|signature|sig|x-amz-signature|x-goog-signature|password|api_key)=)[^&\s\"']+"
    r"|((?:Token|Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|()eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",  # a bare JWT (personal access token)
    re.IGNORECASE,
)
MAX_REMEMBERED = 4096  # keys a bounded table keeps per process; oldest forgotten first


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2) or "") + "***", text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _Redacted(logging.Formatter):
    """Someone else's formatter (gunicorn's access and error logs), its output redacted."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("gunicorn.error", "gunicorn.access"):  # own handlers, set up before the app loads
        for own in logging.getLogger(name).handlers:
            if not isinstance(own.formatter, _Redacted):
                own.setFormatter(_Redacted(own.formatter))
    for noisy in ("urllib3", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def bounded_put(table: OrderedDict, key: object, value: object, limit: int = MAX_REMEMBERED) -> None:
    """``table[key] = value`` as the newest entry, dropping the oldest past ``limit``: memory a flood cannot grow."""
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


class RefusalLog:
    """One warning per (kind, key) per ``window`` s, and at most ``per_minute`` lines in all; the rest counted."""

    def __init__(self, log: logging.Logger, window: float = 600.0, per_minute: int = 20) -> None:
        self.log, self.window, self.per_minute = log, window, per_minute
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._minute, self._lines, self._suppressed = 0, 0, 0
        self._lock = threading.Lock()

    def refused(self, kind: str, key: str, message: str) -> bool:
        """Log ``message`` unless it was logged for (kind, key) lately or the minute's lines are used up."""
        now = time.monotonic()
        with self._lock:
            last = self._seen.get((kind, key))
            if last is not None and now - last < self.window:
                return False
            minute = int(now // 60)
            if minute != self._minute:
                self._minute, self._lines = minute, 0
            if self._lines >= self.per_minute:
                self._suppressed += 1
                return False
            bounded_put(self._seen, (kind, key), now)
            self._lines += 1
            suppressed, self._suppressed = self._suppressed, 0
        more = f" ({suppressed} similar refusals not logged)" if suppressed else ""
        self.log.warning("%s%s", message, more)
        return True
