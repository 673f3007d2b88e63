# YOLO ML backend for Label Studio. CPU build by default; for NVIDIA GPUs build with
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 .
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
# The published checkpoint baked into /models, so the first start pre-labels; empty skips it
# (air-gapped builds: mount your own weights into /models instead).
ARG WEIGHTS=yolov5nu.pt
# Its sha256, required for a name with no digest built into yolo_backend/serving/weights.py (yolov5nu.pt is one):
# without it the image is built with no weights and /health says what to do.
ARG WEIGHTS_SHA256=

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=9090 \
    WORKERS=1 \
    THREADS=8 \
    MODEL_ROOT=/models \
    MODEL_DIR=/data/models \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    YOLO_OFFLINE=1

# OpenCV (pulled in by Ultralytics) needs libGL and GLib at import time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# torch first, from the index that matches the hardware (the versions of locks/torch.txt), so the lock
# does not pull a CUDA build; then exactly the locked versions CI tested, hash-checked.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
COPY locks/requirements.txt locks/requirements.txt
RUN pip install --require-hashes -r locks/requirements.txt

RUN useradd --create-home --uid 1000 app \
    && mkdir -p /models /data/models \
    && chown -R app:app /models /data
COPY --chown=app:app . .
RUN pip install --no-deps --no-build-isolation -e .

USER 1000:1000
# Before VOLUME: a named volume mounted on /models starts with these weights.
# Exit status 3: no known sha256 for WEIGHTS and none given; the build goes on without weights.
RUN if [ -n "${WEIGHTS}" ]; then MODEL_PATH="${WEIGHTS}" WEIGHTS_SHA256="${WEIGHTS_SHA256}" \
        python -m yolo_backend.serving.weights || [ "$?" -eq 3 ]; fi
EXPOSE 9090
VOLUME ["/models", "/data/models"]

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '9090'), timeout=3)"]

CMD ["gunicorn", "_wsgi:app"]
