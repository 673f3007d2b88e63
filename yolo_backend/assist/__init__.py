"""Pre-labels from the first task: smart clicks and boxes (``assistant``), answered by a segment-anything
model or the served YOLO checkpoint. Sits above serving (its models and media), below web (its route)."""

from .assistant import Assistant

__all__ = ["Assistant"]
