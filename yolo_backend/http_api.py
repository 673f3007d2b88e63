"""HTTP routes of Label Studio's ML backend protocol, as a Flask app factory.

Routes: ``/health`` (and ``/``), ``/setup``, ``/predict``, ``/webhook``, ``/versions``,
``/metrics``. Request bodies are validated here; the work happens in ``model.YOLOBackend``.
Errors become ``{"error": kind, "message": ...}`` in one handler; tracebacks stay in the log.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .errors import BackendError, BadRequest

log = logging.getLogger(__name__)

OPEN_ROUTES = {"/", "/health", "/webhook"}  # Label Studio's event webhook carries no auth


def create_app(backend: Any) -> Flask:
    """The WSGI app around one ``YOLOBackend``; ``backend.settings`` configures it."""
    app = Flask("yolo_backend")
    settings = backend.settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_mb * 2**20
    app.extensions["yolo_backend"] = backend
    metrics = backend.metrics

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        if settings.basic_auth and request.path not in OPEN_ROUTES and not _authorized(settings.basic_auth):
            return _error(401, "unauthorized", "basic auth required", {"WWW-Authenticate": 'Basic realm="yolo"'})
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
        store = backend.store
        metrics.model_ready.set(1 if store.state.value == "ready" else 0)
        return jsonify(status="UP", model_class=type(backend).__name__, model_state=store.state.value,
                       model_version=store.base_version, message=store.message)

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
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise BadRequest("'params' must be an object")
        results = backend.predict(tasks, context=params.get("context"), project=body.get("project"),
                                  label_config_xml=config)
        return jsonify(results=results)

    @app.post("/webhook")
    def webhook() -> Response:
        body = _json_body()
        action = _field(body, "action", str)
        return jsonify(backend.fit(action, body))

    @app.get("/versions")
    def versions() -> Response:
        return jsonify(versions=backend.versions(request.args.get("project")))

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    return app


def _authorized(expected: tuple[str, str]) -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    user_ok = hmac.compare_digest((auth.username or "").encode(), expected[0].encode())
    pass_ok = hmac.compare_digest((auth.password or "").encode(), expected[1].encode())
    return user_ok and pass_ok


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error=kind, message=message)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
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
