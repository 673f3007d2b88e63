"""Who may start a run: only projects Label Studio knows, asked once with our token and remembered.

``/webhook`` is open (Label Studio's event webhook carries no credentials), so a project id in
a body proves nothing. Before a trigger may count, queue a run or create anything under
``MODEL_DIR/projects``, ``KnownProjects.refusal`` asks Label Studio ``GET /api/projects/<id>/``
with LABEL_STUDIO_API_KEY (the key training reads the annotations with), within a short
timeout so the webhook answers well inside Label Studio's 1 s. Answers are remembered in
bounded memory: a known project for good, an unknown one for a short while. ``logs.RefusalLog``
logs each refusal once per reason and project, not once per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import requests

from ..config import Settings
from ..errors import LabelStudioUnavailable
from ..labelstudio.ls_auth import LabelStudioAuth
from ..logs import bounded_put

log = logging.getLogger("yolo_backend.training")

LOOKUP_TIMEOUT_S = 0.5  # Label Studio waits 1 s for the webhook's answer (WEBHOOK_TIMEOUT)
UNKNOWN_TTL_S = 30.0  # a 404 is asked again after this (a project created meanwhile gets in)
ERROR_TTL_S = 5.0  # Label Studio down or slow: asked again soon
LOOKUPS_PER_S = 10.0  # new ids asked about per second and process: a flood of ids never floods Label Studio
LOOKUP_BURST = 20.0


@dataclass(frozen=True)
class Refusal:
    """Why a trigger starts nothing: ``kind`` groups the log lines, ``reason`` is the answer's text."""

    kind: str
    reason: str


class KnownProjects:
    """Label Studio's answer to "does project N exist?", per process, bounded."""

    def __init__(self, settings: Settings, timeout: float = LOOKUP_TIMEOUT_S) -> None:
        self.url = settings.label_studio_url.rstrip("/")
        self.admitted = settings.model_dir_path / "projects"  # a folder here: admitted before (any worker, any life)
        self.timeout = timeout
        self.auth = LabelStudioAuth(self.url, settings.label_studio_api_key, timeout=timeout)
        self._known: OrderedDict[str, float] = OrderedDict()  # project -> when Label Studio said yes
        self._unknown: OrderedDict[str, tuple[float, Refusal]] = OrderedDict()  # project -> (until, why)
        self._lock = threading.Lock()
        self._tokens, self._filled = LOOKUP_BURST, time.monotonic()
        self._local = threading.local()  # one requests.Session per thread

    def refusal(self, project: str) -> Refusal | None:
        """None when Label Studio knows ``project`` (asked now or earlier); else why not."""
        if not self.auth.configured:
            return Refusal("no_api_key", "LABEL_STUDIO_API_KEY is not set: training reads the project's annotations "
                                         "from Label Studio with it, so no run can start (see docs/training.md)")
        with self._lock:
            if project in self._known:
                self._known.move_to_end(project)
                return None
            remembered = self._unknown.get(project)
            if remembered and remembered[0] > time.monotonic():
                return remembered[1]
            if not self._take_token() and not (self.admitted / project).is_dir():  # a flood never starves those
                return Refusal("lookups_busy", f"too many unknown project ids asked about at once; project {project} "
                                               "was not looked up in Label Studio: trigger again in a few seconds")
        found = self._ask(project)
        self._remember(project, found)
        return found

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(LOOKUP_BURST, self._tokens + (now - self._filled) * LOOKUPS_PER_S)
        self._filled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _ask(self, project: str) -> Refusal | None:
        url = f"{self.url}/api/projects/{project}/"
        try:
            answer = self._session().get(url, headers=self.auth.header(), timeout=self.timeout,
                                         allow_redirects=False)
        except (requests.RequestException, LabelStudioUnavailable) as exc:
            return Refusal("label_studio_error", f"could not ask Label Studio at {self.url} whether project {project} "
                                                 f"exists: {type(exc).__name__}")
        if answer.status_code == 200:
            return None
        if answer.status_code == 401:
            self.auth.invalidate()
            return Refusal("label_studio_error", "Label Studio refused LABEL_STUDIO_API_KEY (HTTP 401): set a valid "
                                                 "legacy token or personal access token")
        if answer.status_code in (403, 404):
            return Refusal("unknown_project", f"Label Studio at {self.url} has no project {project} this backend's "
                                              f"API key may read (GET /api/projects/{project}/: {answer.status_code})")
        return Refusal("label_studio_error", f"Label Studio answered HTTP {answer.status_code} when asked about "
                                             f"project {project}")

    def _remember(self, project: str, found: Refusal | None) -> None:
        with self._lock:
            if found is None:
                self._unknown.pop(project, None)
                bounded_put(self._known, project, time.time())
            else:
                ttl = UNKNOWN_TTL_S if found.kind == "unknown_project" else ERROR_TTL_S
                bounded_put(self._unknown, project, (time.monotonic() + ttl, found))

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session
