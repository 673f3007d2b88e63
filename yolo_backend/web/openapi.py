"""The OpenAPI 3 description of the HTTP interface, served at ``/openapi.json``.

Written by hand next to ``http_api`` rather than generated, so it states the contract
(what Label Studio and scripts may rely on); ``tests/web/test_openapi.py`` checks every
route of the app is described and fuzzes the live app against this document.
"""

from __future__ import annotations

from typing import Any

ERROR_KINDS = ["bad_request", "label_config", "media", "media_denied", "model_not_ready", "model_load",
               "model_path", "label_studio", "unauthorized", "too_large", "http", "internal"]

_ERROR = {"type": "object", "required": ["error", "message"],
          "properties": {"error": {"type": "string", "enum": ERROR_KINDS}, "message": {"type": "string"}}}
_ANY_JSON = {"description": "Any JSON value (Label Studio sends `<id>.<created ts>` or `{\"id\": ...}`)"}
_NULLABLE_STR = {"type": ["string", "null"]}
_OBJECT = {"type": "object"}

_REGION = {"type": "object", "required": ["from_name", "to_name", "type", "value"], "properties": {
    "from_name": {"type": "string"}, "to_name": {"type": "string"},
    "type": {"type": "string", "enum": ["rectanglelabels", "polygonlabels"]},
    "original_width": {"type": "integer"}, "original_height": {"type": "integer"},
    "image_rotation": {"type": "number"}, "score": {"type": "number"}, "value": _OBJECT}}
_PREDICTION = {"type": "object", "required": ["result", "score", "model_version"], "properties": {
    "result": {"type": "array", "items": _REGION}, "score": {"type": "number"},
    "model_version": {"type": "string"}}}
_RUN = {"type": ["object", "null"], "required": ["project", "run_id", "state"], "properties": {
    "project": {"type": "string"}, "run_id": {"type": "string"},
    "state": {"type": "string", "enum": ["queued", "running", "promoted", "rejected", "failed", "not_started"]},
    "reason": {"type": "string"}, "version": _NULLABLE_STR, "progress": _OBJECT, "metrics": _OBJECT}}

_BULK_JOB = {"type": "object", "required": ["job", "project", "state", "total", "stored", "opened", "failed", "left"],
             "properties": {
                 "job": {"type": "string"}, "project": {"type": "string"},
                 "state": {"type": "string", "enum": ["running", "done", "cancelled"]},
                 "origin": {"type": "string", "enum": ["retrieve", "prelabel"]}, "model_version": {"type": "string"},
                 "total": {"type": "integer"}, "stored": {"type": "integer"},
                 "opened": {"type": "integer", "description": "Opened in Label Studio first: predicted on open"},
                 "failed": {"type": "integer"}, "left": {"type": "integer"}, "cancelled": {"type": "integer"},
                 "rate_per_s": {"type": ["number", "null"]}, "eta_s": {"type": ["number", "null"]},
                 "created": {"type": "number"}, "finished": {"type": ["number", "null"]},
                 "failures": {"type": "array", "items": _OBJECT}}}

SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "Health": {"type": "object", "required": ["status", "model_state", "model_version"], "properties": {
        "status": {"type": "string", "enum": ["UP"]}, "model_class": {"type": "string"},
        "model_state": {"type": "string"}, "model_version": {"type": "string"}, "message": _NULLABLE_STR,
        "problems": {"type": "array", "items": {"type": "string"},
                     "description": "What is wrong now, e.g. a promoted version that failed to load"},
        "assist": {"type": "object", "description": "What answers smart clicks and boxes: ASSIST_MODEL's state, "
                                                    "or the served YOLO checkpoint"}}},
    "SetupRequest": {"type": "object", "required": ["schema"], "properties": {
        "project": _ANY_JSON, "schema": {"type": "string", "description": "The project's label config XML"},
        "hostname": {"type": "string"}, "access_token": {"type": "string"}, "extra_params": {}}},
    "SetupResponse": {"type": "object", "required": ["model_version"],
                      "properties": {"model_version": {"type": "string"}}},
    "PredictRequest": {"type": "object", "required": ["tasks", "label_config"], "properties": {
        "tasks": {"type": "array", "items": {"type": "object", "required": ["data"], "properties": {
            "id": {}, "data": {"type": "object", "description": "data[<Image value>] holds the image URL"}}}},
        "label_config": {"type": "string"}, "project": _ANY_JSON,
        "params": {"type": ["object", "null"], "properties": {"context": {
            "description": "A smart tool's regions (Label Studio's interactive pre-annotations): {\"result\": "
                           "[keypointlabels or rectanglelabels regions]}; answered with the object they point at "
                           "(docs/assist.md)"}}}}},
    "PredictResponse": {"type": "object", "required": ["results"], "properties": {
        "results": {"type": "array", "items": {"oneOf": [_PREDICTION, {
            "type": "array", "maxItems": 0, "description": "No prediction for this task (Label Studio stores "
                                                          "nothing): a bulk job stores it through Label Studio's "
                                                          "API, or its image could not be read"}]},
                    "description": "One entry per task, in the order of the request"}}},
    "BulkStatus": {"type": "object", "required": ["runner", "jobs"], "properties": {
        "runner": {"type": "string", "enum": ["local", "rq"]}, "jobs": {"type": "array", "items": _BULK_JOB}}},
    "BulkStartRequest": {"type": "object", "required": ["project"], "properties": {"project": _ANY_JSON}},
    "BulkStartResponse": {"type": "object", "required": ["model_version", "tasks", "job"], "properties": {
        "model_version": {"type": "string"}, "tasks": {"type": "integer"}, "already_predicted": {"type": "integer"},
        "held_by_running_jobs": {"type": "integer"}, "job": _NULLABLE_STR}},
    "BulkCancelRequest": {"type": "object", "required": ["job"], "properties": {"job": {"type": "string"}}},
    "WebhookRequest": {"type": "object", "required": ["action"], "properties": {
        "action": {"type": "string", "examples": ["START_TRAINING", "ANNOTATION_CREATED"]},
        "project": _ANY_JSON, "annotation": {}, "task": {}}},
    "WebhookResponse": {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string"}, "reason": {"type": "string"}, "project": {"type": "string"},
        "run_id": {"type": "string"}}},
    "Versions": {"type": "object", "required": ["versions"], "properties": {
        "versions": {"type": "array", "items": {"type": "string"}}, "project": {"type": "string"},
        "served": _NULLABLE_STR, "details": {"type": "array", "items": _OBJECT},
        "model_version": _NULLABLE_STR, "runs": {"type": "array", "items": _OBJECT}}},
    "TrainingStatus": {"type": "object", "required": ["project", "state"], "properties": {
        "project": {"type": "string"}, "state": {"type": "string"}, "run": _RUN, "last_run": _RUN,
        "served_version": _NULLABLE_STR}},
    "RollbackRequest": {"type": "object", "required": ["version"], "properties": {
        "project": {"description": "Project id (digits)"}, "version": {"type": "string"}}},
    "RollbackResponse": {"type": "object", "required": ["project", "served"], "properties": {
        "project": {"type": "string"}, "served": {"type": "string"}, "metrics": {"type": ["object", "null"]}}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*codes: int) -> dict[str, Any]:
    why = {400: "Malformed request, with the reason", 401: "Basic auth required", 403: "Image host or path refused",
           404: "No such plot kept for that project and version",
           413: "Body above MAX_REQUEST_MB", 422: "The single task's image could not be fetched or decoded",
           500: "Model failed to load, or an internal error (see the log, ref in the message)",
           502: "Label Studio unreachable or refused the token", 503: "Model still loading"}
    return {str(code): _json("Error", why[code]) for code in codes}


def _operation(summary: str, ok: dict[str, Any], errors: tuple[int, ...], body: str | None = None,
               query: dict[str, bool] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **_errors(*errors)}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if query:
        op["parameters"] = [{"name": name, "in": "query", "required": required, "schema": {"type": "string"}}
                            for name, required in query.items()]
    return op


def document(auth: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``auth`` adds the basic-auth scheme the running service demands."""
    health = _operation("Liveness and model state; always fast", _json("Health", "Service is up"), ())
    page = {"description": "The status page (self-contained HTML)", "content": {"text/html": {"schema": {
        "type": "string"}}}}
    root = {**health, "summary": "Liveness and model state as JSON; the status page for a browser (Accept: "
                                 "text/html first, behind basic auth when set)",
            "responses": {"200": {"description": "JSON for Label Studio (Accept */*), HTML for a browser", "content": {
                **health["responses"]["200"]["content"], **page["content"]}}, **_errors(401)}}
    predict_errors = (400, 401, 403, 413, 422, 500, 502, 503)
    paths: dict[str, Any] = {
        "/": {"get": {**root, "operationId": "root"}},
        "/health": {"get": {**health, "operationId": "health"}},
        "/setup": {"post": _operation("Validate a label config; tell the served model version",
                                      _json("SetupResponse", "Config usable"), (400, 401, 413, 500), "SetupRequest")},
        "/predict": {"post": _operation("Predict boxes/polygons for tasks", _json("PredictResponse", "One per task"),
                                        predict_errors, "PredictRequest")},
        "/webhook": {"post": _operation("Label Studio events; queues training, never trains inline (status: "
                                        "queued, folded, counted, ignored, refused or failed, with the reason; "
                                        "401 only when WEBHOOK_SECRET is set and neither its header nor basic "
                                        "auth is given)", _json("WebhookResponse", "Acknowledged"),
                                        (400, 401, 413), "WebhookRequest")},
        "/versions": {"get": _operation("Model versions (a project's trained ones with ?project=)",
                                        _json("Versions", "Versions"), (400, 401), query={"project": False})},
        "/training/status": {"get": _operation("A project's training state", _json("TrainingStatus", "Status"),
                                               (400, 401), query={"project": True})},
        "/training/rollback": {"post": _operation("Serve an earlier promoted version",
                                                  _json("RollbackResponse", "Now serving"), (400, 401, 413),
                                                  "RollbackRequest")},
        "/bulk/status": {"get": _operation("Bulk jobs of a project (or one job): stored, opened, failed, left, rate, "
                                           "time left", _json("BulkStatus", "Jobs"), (400, 401),
                                           query={"project": False, "job": False})},
        "/bulk/start": {"post": _operation("A bulk job for every task of the project lacking the current version",
                                           _json("BulkStartResponse", "Started (job null: nothing to do)"),
                                           (400, 401, 413, 502), "BulkStartRequest")},
        "/bulk/cancel": {"post": _operation("Cancel a bulk job", _json("BulkStatus", "The job, cancelled"),
                                            (400, 401, 413), "BulkCancelRequest")},
        "/status": {"get": _operation("The status page for people: versions, scores, runs, latency, problems",
                                      page, (400, 401), query={"project": False})},
        "/status/plot": {"get": _operation("A version's kept Ultralytics plot (results, confusion matrices)", {
            "description": "PNG", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
            (401, 404), query={"project": True, "version": True, "name": True})},
        "/metrics": {"get": _operation("Prometheus metrics", {"description": "Text exposition format",
                                       "content": {"text/plain": {"schema": {"type": "string"}}}}, (401,))},
        "/openapi.json": {"get": _operation("This document", {"description": "OpenAPI 3.1",
                                            "content": {"application/json": {"schema": _OBJECT}}}, (401,))},
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "YOLO ML backend for Label Studio", "version": "1",
                 "description": 'Errors are always {"error": kind, "message": text}.'},
        "paths": paths, "components": {"schemas": SCHEMAS},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"basic": {"type": "http", "scheme": "basic"}}
        for route, item in paths.items():
            if route not in ("/", "/health", "/webhook"):
                for op in item.values():
                    op["security"] = [{"basic": []}]
    return doc
