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
