"""HTTP routes of Label Studio's ML backend protocol, as a Flask app factory.

Routes: ``/health`` (and ``/``), ``/setup``, ``/predict``, ``/webhook``, ``/versions``,
``/metrics``, ``/bulk/*`` (jobs of tasks beyond one /predict's budget), and ``/status`` for people
(``/`` too, for a browser). Request bodies are validated
here; the work happens in ``serving.backend.YOLOBackend``.
Errors become ``{"error": kind, "message": ...}`` in one handler; tracebacks stay in the log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from typing import Any

from flask import Flask, Response, g, jsonify, request, send_file
from werkzeug.exceptions import HTTPException

from ..assist import Assistant
from ..bulk import BulkJobs, budget
from ..bulk.jobs import start_for_project
from ..errors import BackendError, BadRequest
from ..logs import RefusalLog
from .openapi import document as openapi_document
from .status_page import LabelStudioProbe, gather, plot_path, render

log = logging.getLogger(__name__)

OPEN_ROUTES = {"/", "/health", "/webhook"}  # Label Studio's event webhook carries no auth
# What a person or a scraper reads or changes, never Label Studio: without basic auth they answer
# 401 unless ADMIN_OPEN=true, so a service reachable from a network cannot be rolled back by anyone.
ADMIN_ROUTES = {"/status", "/status/plot", "/training/status", "/training/rollback", "/metrics", "/bulk/status",
                "/bulk/start", "/bulk/cancel"}
ADMIN_CLOSED = ("this route is for admins and no basic auth is set: set BASIC_AUTH_USER and BASIC_AUTH_PASS "
                "(and send them), or ADMIN_OPEN=true to open the status page, rollback and metrics to anyone "
                "who can reach this service")
WEBHOOK_SECRET_HEADER = "X-Webhook-Secret"  # with WEBHOOK_SECRET set, /webhook needs it (or basic auth)


def create_app(backend: Any, bulk: BulkJobs | None = None, assistant: Assistant | None = None) -> Flask:
    """The WSGI app around one ``YOLOBackend``; ``backend.settings`` configures it.

    ``bulk``: where a many-task /predict hands the tasks its PREDICT_BUDGET_SECONDS cannot finish;
    without it every task is predicted inside the request. ``assistant``: what answers a /predict
    carrying a smart tool's point or box (default: one around ``backend``, its assist model not
    loaded until the first such request).
    """
    assistant = assistant or Assistant(backend)
    app = Flask("yolo_backend")
    settings = backend.settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_mb * 2**20
    app.extensions["yolo_backend"] = backend
    metrics = backend.metrics
    started = time.time()  # the status page's "up" and tasks per minute
    probe = LabelStudioProbe(settings.label_studio_url)

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        # /health stays open for probes, but answers 401 to wrong credentials: Label Studio's connect
        # form then shows its "authentication parameters ... incorrect" error, not a generic one.
        guarded = request.path not in OPEN_ROUTES or (request.path != "/webhook" and request.authorization is not None)
        if settings.basic_auth and guarded and not _authorized(settings.basic_auth):
            return _error(401, "unauthorized", "basic auth required", {"WWW-Authenticate": 'Basic realm="yolo"'})
        if request.path in ADMIN_ROUTES and not _admin_allowed(settings):
            return _error(401, "unauthorized", ADMIN_CLOSED)
        return None

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "other"
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    @app.errorhandler(BackendError)
    def _backend_error(exc: BackendError) -> Response:
        metrics.errors.labels(exc.kind).inc()
        log.warning("%s %s -> %d %s: %s", request.method, request.path, exc.status, exc.kind, exc)
        return _error(exc.status, exc.kind, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        kind = "too_large" if exc.code == 413 else "http"
        return _error(exc.code or 500, kind, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        ref = uuid.uuid4().hex[:8]
        metrics.errors.labels("internal").inc()
        log.exception("unexpected error on %s %s (ref %s)", request.method, request.path, ref)
        return _error(500, "internal", f"internal error, see the backend log (ref {ref})")

    @app.get("/")
    @app.get("/health")
    def health() -> Response:
        if request.path == "/" and _wants_html():  # a browser; Label Studio sends Accept: */* and gets JSON
            if settings.basic_auth and not _authorized(settings.basic_auth):  # "/" is open for probes, the page is not
                return _error(401, "unauthorized", "basic auth required", {"WWW-Authenticate": 'Basic realm="yolo"'})
            if not _admin_allowed(settings):
                return _error(401, "unauthorized", ADMIN_CLOSED)
            return status_page()
        store = backend.store
        metrics.model_ready.set(1 if store.state.value == "ready" else 0)
        problems = store.problems  # e.g. a promoted version that failed to load, and what serves instead
        prompted = getattr(backend, "prompts", None)
        if prompted is not None and prompted.problem:  # PROMPT_MODEL or its text encoder missing: what to fetch
            problems = [*problems, prompted.problem]
        answer = jsonify(status="UP", model_class=type(backend).__name__, model_state=store.state.value,
                         model_version=store.base_version, message="; ".join(problems) or store.message,
                         problems=problems, assist=assistant.status())
        if request.path == "/":
            answer.headers["Vary"] = "Accept"
        return answer

    @app.get("/status")
    def status_page() -> Response:
        """The page for people: versions, scores, the current run's curves, decisions, latency, problems."""
        project = request.args.get("project", "")
        view = _per_project(lambda p: gather(backend, started, probe, p or None, bulk), project)
        page = Response(render(view), mimetype="text/html")
        page.headers["Cache-Control"] = "no-store"
        page.headers["Vary"] = "Accept"
        return page

    @app.get("/status/plot")
    def status_plot() -> Response:
        """A version's kept Ultralytics plot; the file is found through the registry, never named by the request."""
        args = request.args
        path = plot_path(settings.model_dir_path, args.get("project", ""), args.get("version", ""),
                         args.get("name", ""))
        if path is None:
            return _error(404, "http", "no such plot: give project, a version of it, and name=results, "
                                       "confusion_matrix or confusion_matrix_normalized")
        return send_file(path, mimetype="image/png", max_age=3600)

    @app.post("/setup")
    def setup() -> Response:
        body = _json_body()
        schema = _field(body, "schema", str)
        return jsonify(backend.setup(body.get("project"), schema))

    @app.post("/predict")
    def predict() -> Response:
        body = _json_body()
        tasks = _field(body, "tasks", list)
        config = _field(body, "label_config", str)
        params = body.get("params")
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise BadRequest("'params' must be an object")
        # a smart tool's point or box: the object it points at; else pre-labels, within the request's budget
        results = assistant.answer(tasks, params.get("context"), body.get("project"), config)
        if results is None:
            results = budget.predict(backend, bulk, tasks, body.get("project"), config, context=params.get("context"))
        return jsonify(results=results)

    def _bulk() -> BulkJobs:
        if bulk is None:
            raise BadRequest("bulk jobs are not enabled in this service")
        return bulk

    @app.get("/bulk/status")
    def bulk_status() -> Response:
        """Jobs of a project (or one job): tasks stored, opened first, failed, left; rate and time left."""
        project, job = request.args.get("project"), request.args.get("job")
        if not project and not job:
            raise BadRequest("add ?project=<Label Studio project id> or ?job=<bulk job id>")
        try:
            return jsonify(_bulk().status(project, job))
        except KeyError as exc:
            raise BadRequest(str(exc).strip("'\"")) from None

    @app.post("/bulk/start")
    def bulk_start() -> Response:
        """Every task of the project lacking the current version, as one job (``yolo-ls prelabel --backend``)."""
        project = budget.project_key(_json_body().get("project"))
        try:
            return jsonify(start_for_project(_bulk(), backend, project))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    @app.post("/bulk/cancel")
    def bulk_cancel() -> Response:
        """Stop a job: chunks stop before their next store; queued tasks are predicted on open again."""
        try:
            return jsonify(_bulk().cancel(_field(_json_body(), "job", str)))
        except KeyError as exc:
            raise BadRequest(str(exc).strip("'\"")) from None

    webhook_refusals = RefusalLog(log)

    @app.post("/webhook")
    def webhook() -> Response:
        if settings.webhook_secret and not _webhook_authorized(settings.webhook_secret, settings.basic_auth):
            webhook_refusals.refused("webhook_secret", request.remote_addr or "-", (
                f"POST /webhook from {request.remote_addr} refused: no valid {WEBHOOK_SECRET_HEADER} header and no "
                "valid basic auth (see docs/training.md, 'Who may start a run')"))
            return _error(401, "unauthorized", f"send WEBHOOK_SECRET in the {WEBHOOK_SECRET_HEADER} header (Label "
                          "Studio: Project > Settings > Webhooks > the backend's webhook > Headers), or basic auth")
        body = _json_body()
        action = _field(body, "action", str)
        return jsonify(_per_project(lambda _: backend.fit(action, body), ""))  # bad project id: 400

    @app.get("/versions")
    def versions() -> Response:
        project = request.args.get("project")
        history = getattr(backend.trainer, "history", None)
        if project and history is not None:  # a project's trained versions, with holdout scores and decisions
            answer = _per_project(history, project)
            answer["model_version"] = backend.current_version(project)  # what /setup and /predict say now
            return jsonify(answer)
        return jsonify(versions=backend.versions())

    @app.get("/training/status")
    def training_status() -> Response:
        project = request.args.get("project")
        if not project:
            raise BadRequest("add ?project=<Label Studio project id>")
        return jsonify(_per_project(backend.trainer.status, project))

    @app.post("/training/rollback")
    def training_rollback() -> Response:
        body = _json_body()
        rollback = getattr(backend.trainer, "rollback", None)
        if rollback is None:
            raise BadRequest("training is not enabled in this service")
        project, version = str(body.get("project", "")), _field(body, "version", str)
        try:
            return jsonify(_per_project(lambda p: rollback(p, version), project))
        except (KeyError, FileNotFoundError) as exc:
            raise BadRequest(str(exc).strip("'\"")) from None

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(openapi_document(auth=settings.basic_auth is not None))

    return app


def _wants_html() -> bool:
    """A browser's Accept (text/html first); ``*/*``, JSON or none at all keep the JSON answer."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _per_project(call: Any, project: str) -> Any:
    """``call(project)``, a malformed project id answered 400 instead of 500."""
    try:
        return call(project)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _admin_allowed(settings: Any) -> bool:
    """Admin routes: basic auth (checked before this) or ADMIN_OPEN=true, never open by default.

    Without basic auth there are no credentials a browser could give, so the 401 carries no
    ``WWW-Authenticate`` challenge, only the message naming the two settings that fix it.
    """
    return settings.basic_auth is not None or settings.admin_open


def _authorized(expected: tuple[str, str]) -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    user_ok = hmac.compare_digest((auth.username or "").encode(), expected[0].encode())
    pass_ok = hmac.compare_digest((auth.password or "").encode(), expected[1].encode())
    return user_ok and pass_ok


def _webhook_authorized(secret: str, basic_auth: tuple[str, str] | None) -> bool:
    """The shared secret in its header (Label Studio's project webhook can send headers), or valid basic auth
    (what Label Studio's Start training button sends: the ML backend's connection settings, no custom headers).
    Compared as SHA-256 digests in constant time, so neither the content nor the length leaks."""
    sent = request.headers.get(WEBHOOK_SECRET_HEADER, "")
    if sent and hmac.compare_digest(hashlib.sha256(sent.encode()).digest(), hashlib.sha256(secret.encode()).digest()):
        return True
    return basic_auth is not None and _authorized(basic_auth)


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error=kind, message=message)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _json_body() -> dict[str, Any]:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # json.loads gives up on deep nesting with this, not a ValueError
        raise BadRequest("the JSON body is nested too deeply") from None
    if body is None:
        raise BadRequest("the request body must be JSON (Content-Type: application/json)")
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    if name not in body:
        raise BadRequest(f"missing field {name!r}")
    value = body[name]
    if not isinstance(value, kind):
        raise BadRequest(f"field {name!r} must be a {'string' if kind is str else kind.__name__}, "
                         f"not {type(value).__name__}")
    return value
