"""Server entry point: ``gunicorn _wsgi:app`` in production, ``python _wsgi.py`` for development."""

from __future__ import annotations

import argparse
import logging
import os

from yolo_backend.app import build_app
from yolo_backend.config import Settings
from yolo_backend.web.exposure import exposure_warning

settings = Settings.from_env()
app = build_app(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description="YOLO ML backend for Label Studio (development server)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "9090")))
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    args = parser.parse_args()
    from yolo_backend.logs import configure

    configure(args.log_level)
    warning = exposure_warning([args.host], settings)
    if warning:
        logging.getLogger("yolo_backend").warning(warning)
    app.run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
