"""Whether the service answers beyond this machine without credentials, said once at start.

gunicorn's master calls ``exposure_warning`` when it is ready (``gunicorn.conf.py``), and
``python _wsgi.py`` before it serves: once per start, not once per worker. Plain data in,
a sentence out, so it is tested without a server.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from ..config import Settings


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``; ``0.0.0.0``, ``::``, an interface's address or a name are not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def exposure_warning(hosts: Iterable[str], settings: Settings) -> str | None:
    """The warning to log when a listening host is not loopback and no basic auth is set, else None."""
    exposed = [host or "0.0.0.0" for host in hosts if not is_loopback(host)]
    if not exposed or settings.basic_auth is not None:
        return None
    admin = ("and, with ADMIN_OPEN=true, read /status and /metrics and roll back versions" if settings.admin_open
             else "(the admin routes answer 401 until basic auth or ADMIN_OPEN=true is set)")
    return (f"listening on {', '.join(exposed)} without BASIC_AUTH_USER/BASIC_AUTH_PASS: anyone who can reach "
            f"this address may call /predict, /setup and /webhook {admin}; set basic auth here and in Label "
            "Studio's model connection, or listen on 127.0.0.1 (HOST=127.0.0.1; docker compose publishes on "
            "BACKEND_BIND, 127.0.0.1 unless you change it)")
