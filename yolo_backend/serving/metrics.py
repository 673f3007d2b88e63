"""Prometheus metrics, one registry per app (no process-global collectors).

With several gunicorn workers each worker counts its own requests; scrape through
a load balancer that pins, or run one worker per container.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 100)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("yolo_backend_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram("yolo_backend_request_seconds", "HTTP request latency", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.tasks = Counter("yolo_backend_tasks_predicted", "Tasks answered by /predict", ["outcome"], registry=r)
        self.inference = Histogram("yolo_backend_inference_seconds", "Model inference time per image",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.fetch = Histogram("yolo_backend_image_fetch_seconds", "Image fetch and decode time per image",
                               buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("yolo_backend_errors", "Errors by kind", ["kind"], registry=r)
        self.model_ready = Gauge("yolo_backend_model_ready", "1 when the base model is loaded", registry=r)
        # Training gauges come from training.gauges.TrainingCollector: runs live in other processes.

    def render(self) -> bytes:
        return generate_latest(self.registry)
