"""Small objects in large images: predict overlapping tiles at the model's own scale, merge across tiles.

A 4000 x 3000 photo shrunk to a 640 input turns a 20 px object into 3 px, which no detector
finds. With ``model_tile="640"`` on a control (or TILE for every control) an image larger than
the tile is also cut into tiles of that side overlapping by a fifth, each predicted as an image
of its own; the whole-image pass keeps the large objects. Detections are moved back into the
image's pixels and merged per class, best first: one that lies mostly inside a kept one of its
class (intersection over the smaller box at least ``MERGE_IOS``; the cut-off part of an object
a tile edge split) is folded into it, and the kept box grows to cover both. Off by default.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from ..errors import LabelConfigError
from ..formats import overlap
from ..formats.convert import Detection

OVERLAP = 0.2  # of the tile side: an object smaller than this lies whole inside some tile
MERGE_IOS = 0.5  # intersection over the smaller box at which two detections of a class are one object
OPTION = "model_tile"


def tile_size(options: Sequence[Any], default: int) -> int:
    """The tile side for a group of controls sharing one inference: the smallest any of them asks (0: off)."""
    sizes = []
    for spec in options:
        raw = spec.option(OPTION)
        if raw is None:
            continue
        if not str(raw).isdigit() or (int(raw) and int(raw) < 32):
            raise LabelConfigError(f'{OPTION}="{raw}" on control {spec.from_name!r}: use a tile side in px of at least '
                                   '32 (e.g. 640), or 0 for none')
        sizes.append(int(raw))
    sizes = [s for s in sizes if s > 0] if sizes else ([default] if default > 0 else [])
    return min(sizes) if sizes else 0


def windows(width: int, height: int, size: int, overlap: float = OVERLAP) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) tiles covering the image, ``size`` square (the last row and column flush with the edge)."""
    step = max(1, int(size * (1 - overlap)))

    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        return [*range(0, length - size, step), length - size]

    return [(x, y, min(x + size, width), min(y + size, height)) for y in starts(height) for x in starts(width)]


def detect(detector: Any, images: Sequence[np.ndarray], size: int, conf: float, bulk: bool = False
           ) -> list[list[Detection]]:
    """Per image: the whole-image detections plus those of its tiles, merged; images within one tile as usual."""
    if size <= 0 or getattr(detector, "task", "detect") == "classify":
        return detector.detect(images, conf=conf, bulk=bulk)
    small = [i for i, image in enumerate(images) if max(image.shape[:2]) <= size]
    out: list[list[Detection]] = [[] for _ in images]
    for i, found in zip(small, detector.detect([images[i] for i in small], conf=conf, bulk=bulk) if small else []):
        out[i] = found  # within one tile: one call for all of them, as without tiles
    within = set(small)
    for i, image in enumerate(images):
        if i in within:
            continue
        height, width = image.shape[:2]
        boxes = windows(width, height, size)
        found = detector.detect([image] + [image[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes], conf=conf,
                                bulk=True)  # many crops: the engine's bulk lanes take them side by side
        moved, cut = list(found[0]), []
        for (x0, y0, x1, y1), detections in zip(boxes, found[1:]):
            for d in detections:
                d = shift(d, x0, y0)
                (cut if _at_inner_edge(d.box, (x0, y0, x1, y1), width, height) else moved).append(d)
        out[i] = merge(moved, cut)
    return out


def _at_inner_edge(box: tuple[float, ...], tile: tuple[int, int, int, int], width: int, height: int,
                   margin: float = 2.0) -> bool:
    """Whether a tile's detection touches an edge of the tile that is not the image's: it may be a piece."""
    x0, y0, x1, y1 = tile
    return ((x0 > 0 and box[0] <= x0 + margin) or (y0 > 0 and box[1] <= y0 + margin)
            or (x1 < width and box[2] >= x1 - margin) or (y1 < height and box[3] >= y1 - margin))


def shift(d: Detection, dx: float, dy: float) -> Detection:
    """A tile's detection in the whole image's pixels."""
    x1, y1, x2, y2 = d.box
    return replace(d, box=(x1 + dx, y1 + dy, x2 + dx, y2 + dy),
                   polygon=tuple((x + dx, y + dy) for x, y in d.polygon) if d.polygon else d.polygon,
                   corners=tuple((x + dx, y + dy) for x, y in d.corners) if d.corners else d.corners,
                   keypoints=tuple((x + dx, y + dy, c) for x, y, c in d.keypoints) if d.keypoints else d.keypoints)


def merge(whole: Sequence[Detection], cut: Sequence[Detection] = (), ios: float = MERGE_IOS) -> list[Detection]:
    """Greedy, best score first, whole detections before pieces at a tile edge.

    A detection mostly inside a kept one of its class joins it (the box grows to cover both); a
    piece mostly inside a kept one of another class is dropped (a half circle looks square); a
    piece inside nothing is kept (an object wider than the overlap is only ever seen cut).
    """
    kept: list[Detection] = []
    for d, is_piece in [(d, False) for d in sorted(whole, key=lambda d: -d.score)] + \
                       [(d, True) for d in sorted(cut, key=lambda d: -d.score)]:
        inside = [i for i, k in enumerate(kept)
                  if overlap.box_ios(np.array([k.box]), np.array([d.box]))[0, 0] >= ios
                  and (k.class_id == d.class_id or is_piece)]
        same = [i for i in inside if kept[i].class_id == d.class_id]
        if same:
            k = kept[same[0]]
            kept[same[0]] = replace(k, box=(min(k.box[0], d.box[0]), min(k.box[1], d.box[1]),
                                            max(k.box[2], d.box[2]), max(k.box[3], d.box[3])))
        elif not inside:
            kept.append(d)
    return kept

