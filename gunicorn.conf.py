"""gunicorn settings from the same environment variables as the service (see yolo_backend/config.py).

gunicorn reads this file from the working directory, so `gunicorn _wsgi:app` is the whole command.
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '9090')}"
workers = int(os.environ.get("WORKERS", "1"))
threads = int(os.environ.get("THREADS", "8"))
worker_class = "gthread"  # threads fetch images while another request runs inference
timeout = 120  # a worker silent this long is restarted; gthread workers stay alive during long requests
graceful_timeout = 30
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()
accesslog = "-" if loglevel == "debug" else None


def when_ready(server):  # gunicorn calls it once, in the master, when it listens
    """Warn once per start when it answers beyond this machine without basic auth (yolo_backend/web/exposure.py)."""
    from yolo_backend.config import Settings
    from yolo_backend.web.exposure import exposure_warning

    try:
        settings = Settings.from_env()
    except ValueError:  # a malformed setting: every worker fails with its name, no need to say it here
        return
    hosts = [address[0] for address in server.cfg.address if isinstance(address, tuple)]  # unix sockets: str
    warning = exposure_warning(hosts, settings)
    if warning:
        server.log.warning(warning)


def post_fork(server, worker):  # gunicorn calls it with these
    """Cap glibc's malloc arenas in each worker before its threads start.

    glibc gives every thread that allocates its own arena (up to 8 per core), and memory freed
    in one stays reserved there. With request threads, fetch threads and bulk lanes that held
    about 70 MB more at peak than two arenas do, at the same speed (docs/speed.md). The
    environment variable MALLOC_ARENA_MAX, when set, wins.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except OSError:  # not glibc (macOS, musl): nothing to cap
        pass
