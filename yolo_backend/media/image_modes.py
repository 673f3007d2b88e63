"""Pixel formats a task image may come in, turned into the 8-bit RGB a detector expects.

Grayscale, palette, alpha and CMYK convert the usual way; 16- and 32-bit grayscale
(scientific, medical and depth images) need scaling, because a plain conversion clips
every value above 255 and leaves a white image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB (``img`` itself when it is already). 16/32-bit grayscale is scaled like a browser shows it.

    PIL's convert would clip 16-bit values at 255; and it copies even an RGB image, which for a
    100 Mpx image is 400 MB more at the decode's peak.
    """
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I"):
        values = np.asarray(img, dtype=np.float64)
        if values.min() >= 0 and values.max() <= 65535:  # 16-bit data, whatever PIL calls the mode
            return Image.fromarray((values / 257.0).round().astype(np.uint8)).convert("RGB")
        img = img.convert("F")
    if img.mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float64))
        low, span = values.min(), max(float(np.ptp(values)), 1e-12)
        return Image.fromarray(((values - low) * (255.0 / span)).round().astype(np.uint8)).convert("RGB")
    return img.convert("RGB")
