"""The intra-op thread count of a loaded ONNX Runtime / OpenVINO engine, so workers share the cores."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def limit_threads(model: object, runtime: str, exported: Path, threads: int) -> bool:
    """Rebuild the engine session behind ``model`` (after its first predict) with ``threads`` intra-op threads.

    Ultralytics' AutoBackend creates the ONNX Runtime session / OpenVINO compiled model on the
    first predict and passes no thread count: ``ONNXBackend`` accepts ``session_options`` but
    AutoBackend never gives any, and ``OpenVINOBackend`` compiles with its own fixed config. Both
    then use every core, so WORKERS processes side by side would oversubscribe the CPU. Neither
    reads OMP_NUM_THREADS (ONNX Runtime's pip build has its own thread pool). So the session is
    built again once, here, with the count. Returns whether it was; on any failure the default
    session keeps serving.
    """
    backend = getattr(getattr(getattr(model, "predictor", None), "model", None), "backend", None)
    try:
        if runtime == "onnx" and getattr(backend, "session", None) is not None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            providers = backend.session.get_providers()  # type: ignore[union-attr]
            backend.session = onnxruntime.InferenceSession(str(exported), options, providers=providers)  # type: ignore[union-attr]
            return True
        compile_model = getattr(backend, "compile_model", None)
        if runtime == "openvino" and isinstance(compile_model, functools.partial):
            config = {**compile_model.keywords.get("config", {}), "INFERENCE_NUM_THREADS": threads}
            backend.compile_model = functools.partial(compile_model, config=config)  # type: ignore[union-attr]
            xml = exported if exported.suffix == ".xml" else next(exported.glob("*.xml"))
            core = compile_model.func.__self__  # the ov.Core Ultralytics made
            backend.ov_compiled_model = backend.compile_model(core.read_model(str(xml)))  # type: ignore[union-attr]
            return True
    except Exception as exc:
        log.warning("%s: could not set %d %s threads (%s: %s); its default serves", exported.name, threads, runtime,
                    type(exc).__name__, str(exc)[:200])
    return False
