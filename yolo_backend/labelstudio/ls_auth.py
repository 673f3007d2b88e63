"""Authorization headers for Label Studio, from a legacy token or a personal access token.

A legacy token is sent as ``Token <key>``. A personal access token (a JWT refresh
token) is exchanged at ``/api/token/refresh/`` for a short-lived access token, sent as
``Bearer <access>`` and refreshed shortly before it expires or after a 401.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time

import requests

from ..errors import LabelStudioUnavailable

log = logging.getLogger(__name__)

REFRESH_MARGIN_S = 30.0


def is_personal_access_token(key: str) -> bool:
    """PATs are JWTs (three base64url parts); legacy tokens are 40 hex characters."""
    return key.count(".") == 2


def jwt_expiry(token: str) -> float:
    """The ``exp`` claim of a JWT, unverified (only used to know when to refresh)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return float(json.loads(base64.urlsafe_b64decode(payload))["exp"])
    except (IndexError, KeyError, ValueError, TypeError):
        return time.time() + 60.0


class LabelStudioAuth:
    """Thread-safe source of the ``Authorization`` header for one Label Studio."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self._timeout = timeout
        self._lock = threading.Lock()
        self._access: str | None = None
        self._expires = 0.0

    def __repr__(self) -> str:  # never print the key
        return f"LabelStudioAuth({self.base_url!r}, key={'set' if self._key else 'unset'})"

    @property
    def configured(self) -> bool:
        return bool(self._key)

    def header(self) -> dict[str, str]:
        if not self._key:
            return {}
        if not is_personal_access_token(self._key):
            return {"Authorization": f"Token {self._key}"}
        with self._lock:
            if self._access is None or time.time() > self._expires - REFRESH_MARGIN_S:
                self._refresh()
            return {"Authorization": f"Bearer {self._access}"}

    def invalidate(self) -> None:
        """Forget the access token (after a 401) so the next header() refreshes it."""
        with self._lock:
            self._access = None

    def _refresh(self) -> None:
        url = f"{self.base_url}/api/token/refresh/"
        try:
            answer = requests.post(url, json={"refresh": self._key}, timeout=self._timeout)
        except requests.RequestException as exc:
            raise LabelStudioUnavailable(f"could not reach Label Studio to exchange the token: {exc}") from None
        if answer.status_code != 200:
            raise LabelStudioUnavailable(
                f"Label Studio refused the personal access token (HTTP {answer.status_code}): "
                "check LABEL_STUDIO_API_KEY, or create a new token under Account & Settings"
            )
        self._access = _access_token(answer)
        self._expires = jwt_expiry(self._access)
        log.debug("exchanged the personal access token; access valid %.0f s", self._expires - time.time())


def _access_token(answer: requests.Response) -> str:
    """The ``access`` of a 200 refresh answer; a body that is not Label Studio's JSON gets a clear error."""
    kind = answer.headers.get("Content-Type", "no content type").split(";")[0]
    try:
        body = answer.json()
    except ValueError:  # requests' JSONDecodeError: an HTML login page of a proxy in front of Label Studio
        raise LabelStudioUnavailable(
            f"Label Studio's token refresh (POST /api/token/refresh/) answered HTTP 200 with a body that is not "
            f"JSON ({kind}): a proxy or login page? Check that LABEL_STUDIO_URL points at Label Studio itself"
        ) from None
    access = body.get("access") if isinstance(body, dict) else None
    if not isinstance(access, str) or not access:
        raise LabelStudioUnavailable(
            f"Label Studio's token refresh answered HTTP 200 without an access token ({kind}): check "
            "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"
        )
    return access
