"""Label Studio ML backend for YOLO object detection (Ultralytics)."""

__version__ = "0.1.0"
