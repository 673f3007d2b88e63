"""An untrained yolov5nu that still finds things, for runtime checks and benchmarks offline.

A model built from ``yolov5nu.yaml`` has random weights whose activations shrink
layer by layer to nothing: every score is the same constant and no box passes any
threshold, so comparing two engines on it proves nothing. Calibrating the batch-norm
statistics on a few images restores healthy activations, and a lower class bias
leaves a handful of detections per image with spread scores and boxes. The compute
is exactly that of the real yolov5nu; only the answers are meaningless.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS_BIAS = -8.0  # measured: a few boxes above 0.25 on a synthetic image, about 100 on a COCO photo


def build(target: Path, arch: str = "yolov5nu.yaml", seed: int = 0, calibration_images: int = 8,
          class_bias: float = CLASS_BIAS) -> Path:
    """Write a checkpoint of ``arch`` with random, calibrated weights to ``target``; deterministic per seed.

    A lower ``class_bias`` gives fewer boxes (benchmarks want a real model's handful per photo).
    """
    import torch
    from ultralytics import YOLO

    from .synthetic import draw_sample

    torch.manual_seed(seed)
    model = YOLO(arch)
    net = model.model
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # running stats = the plain average over the calibration batch
    pixels = [np.asarray(draw_sample(seed + i, size=(320, 320))[0]).copy() for i in range(calibration_images)]
    batch = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255
    net.train()
    with torch.no_grad():
        net(batch)
    net.eval()
    for branch in net.model[-1].cv3:  # the class branch of each Detect level
        branch[-1].bias.data.fill_(class_bias)
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(target))
    return target
