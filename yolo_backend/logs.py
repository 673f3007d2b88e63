"""Logging setup: one format, level from LOG_LEVEL, secrets never printed."""

from __future__ import annotations

import logging
import re

# Tokens in URLs (?token=..., presigned signatures) and auth headers are masked.
_SECRET = re.compile(
    r"((?:token|access_token|refresh|signature|sig|x-amz-signature|x-goog-signature|password|api_key)=)[^&\s\"']+"
    r"|((?:Token|Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|()eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",  # a bare JWT (personal access token)
    re.IGNORECASE,
)


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
