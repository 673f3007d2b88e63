"""Logging setup: one format, level from LOG_LEVEL, secrets never printed."""

from __future__ import annotations

import logging
import re

# Tokens in URLs (?token=..., presigned signatures) and auth headers are masked.
_SECRET = re.compile(
    r"((?:token|access_token|refresh|signature|sig|x-amz-signature|x-goog-signature|password|api_key)=)[^&\s\"']+"
    r"|((?:Token|Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
