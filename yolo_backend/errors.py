"""Exceptions of the service and the HTTP status each one maps to.

Handled in one place (``http_api``): the client gets ``{"error": kind, "message": ...}``,
the traceback goes to the log only.
"""

from __future__ import annotations


class BackendError(Exception):
    """Base class: ``status`` is the HTTP answer, ``kind`` a stable machine-readable name."""

    status = 500
    kind = "internal"


class BadRequest(BackendError):
    status = 400
    kind = "bad_request"


class LabelConfigError(BadRequest):
    kind = "label_config"


class MediaError(BackendError):
    """An image could not be fetched or decoded; the task id and URL host travel in the message."""

    status = 422
    kind = "media"


class MediaAccessDenied(MediaError):
    """A path outside the allowed roots, or a host that may not be fetched."""

    status = 403
    kind = "media_denied"


class MediaUrlRefused(MediaError):
    """A URL on Label Studio's origin outside its media routes, or a task id that is not an id.

    Refused before any request is made, so a task's URL can never drive Label Studio's API
    with our token (status 422, kind ``media``, like other image URLs that cannot be used).
    """


class ModelNotReady(BackendError):
    status = 503
    kind = "model_not_ready"


class ModelLoadError(BackendError):
    status = 500
    kind = "model_load"


class ModelPathRefused(BadRequest):
    kind = "model_path"


class LabelStudioUnavailable(BackendError):
    """Label Studio could not be reached, or refused our token."""

    status = 502
    kind = "label_studio"
