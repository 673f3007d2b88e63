"""Label Studio ML backend for YOLO object detection (Ultralytics)."""

import os

__version__ = "0.1.0"

# The service never downloads at run time: without this, Ultralytics probes DNS on import and
# tries to pip-install missing optional packages. Set YOLO_OFFLINE=0 to allow it anyway.
os.environ.setdefault("YOLO_OFFLINE", "1")
