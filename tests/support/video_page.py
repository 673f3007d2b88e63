"""What Label Studio's video editor shows, read from a real Chromium page, and what it should show.

``shown_at`` moves the editor (``window.Htx``, Label Studio's frontend store) to a frame as its
timeline does and reads the rectangles it draws (``window.Konva``) and the picture under them.
``ls_shown_box`` is Label Studio's own rule for a ``videorectangle`` sequence, transcribed from
its frontend (``VideoRectangleRegion.getShape``, ``VideoRegion.isInLifespan``), and
``decoded_colour_boxes`` finds the objects of a ``moving_shapes`` video in OpenCV's frames the
same way ``shown_at`` finds them in the browser's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.support import moving_shapes

Box = list[float]
# RGB bounds of each object's colour in a decoded picture (moving_shapes draws them in BGR):
# the crossing square is red, the circle blue, the leaving square green; the grey clutter is none
COLOURS = {"red": ((170, 255), (0, 90), (0, 90)), "blue": ((0, 90), (40, 140), (170, 255)),
           "green": ((0, 90), (120, 255), (0, 110))}
REDRAW_POLLS = 50  # x 100 ms: Konva redraws on React's next render after a seek

TAG_JS = "Htx.annotationStore.selected.names.get('video')"
SEQUENCES_JS = "() => Htx.annotationStore.selected.regions.map(r => r.sequence)"
SERIALIZED_JS = "() => Htx.annotationStore.selected.serializeAnnotation()"  # what the editor would save

# The editor's frame and video time, the Konva rectangles it draws (pixels of the video) and
# the box of each coloured object in the picture the <video> element holds now.
SHOWN_JS = """([colours]) => {
  const tag = Htx.annotationStore.selected.names.get('video'), video = document.querySelector('video');
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const boxes = {};
  for (const [name, bounds] of Object.entries(colours)) {
    let [x1, y1, x2, y2] = [Infinity, Infinity, -1, -1];
    for (let i = 0; i < pixels.length; i += 4) {
      if ([0, 1, 2].every(c => bounds[c][0] <= pixels[i + c] && pixels[i + c] <= bounds[c][1])) {
        const x = (i / 4) % canvas.width, y = Math.floor(i / 4 / canvas.width);
        x1 = Math.min(x1, x); y1 = Math.min(y1, y); x2 = Math.max(x2, x + 1); y2 = Math.max(y2, y + 1);
      }
    }
    if (x2 >= 0) boxes[name] = [x1, y1, x2, y2];
  }
  const rects = Konva.stages.flatMap(s => s.find('Rect')).filter(r => r.isVisible())
    .map(r => [r.x(), r.y(), r.x() + r.width(), r.y() + r.height()]);
  return {frame: tag.frame, time: video.currentTime, rects, colours: boxes};
}"""

SEEKED_JS = """(frame) => {
  const tag = Htx.annotationStore.selected.names.get('video'), video = document.querySelector('video');
  return tag.frame === frame && !video.seeking && video.readyState >= 2;
}"""

# Load a video, play it until its time moves (or it fails, or ``timeout`` ms pass); what the element says then.
PLAY_JS = """async ([src, timeout]) => {
  const video = document.createElement('video');
  video.muted = true;
  document.body.appendChild(video);
  const moved = new Promise(done => {
    video.onerror = done;
    video.ontimeupdate = () => video.currentTime > 0 && done();
    setTimeout(done, timeout);
  });
  video.src = src;
  video.play().catch(() => {});
  await moved;
  video.pause();
  return {error: video.error && video.error.code, readyState: video.readyState, width: video.videoWidth,
          height: video.videoHeight, duration: video.duration, time: video.currentTime};
}"""


def wait_for_length(page: Any, frames: int, timeout_ms: float) -> None:
    """Until the editor counts ``frames`` frames: it knows them once the browser has the video's duration."""
    page.wait_for_function(f"() => window.Htx?.annotationStore?.selected?.names?.get('video')?.length === {frames}",
                           timeout=timeout_ms)


def shown_at(page: Any, frame: int, timeout_ms: float) -> dict[str, Any]:
    """Move the editor to ``frame`` as its timeline does, wait for the seek and the redraw, read what shows."""
    page.evaluate(f"(frame) => {TAG_JS}.setFrame(frame)", frame)
    page.wait_for_function(SEEKED_JS, arg=frame, timeout=timeout_ms)
    seen, previous = page.evaluate(SHOWN_JS, [COLOURS]), None
    for _ in range(REDRAW_POLLS):  # until two reads agree: a condition, not a fixed wait
        if seen == previous:
            break
        page.wait_for_timeout(100)
        previous, seen = seen, page.evaluate(SHOWN_JS, [COLOURS])
    return seen


def ls_shown_box(sequence: list[dict[str, Any]], frame: int) -> Box | None:
    """The pixel box Label Studio draws on ``frame`` (1-based) for a ``sequence``, None where it hides it.

    The keyframe on the frame, else linear between the keyframes around it, else the last
    keyframe's box; shown only while the last keyframe at or before the frame is enabled
    (or is on the frame itself). ``time`` plays no part: the editor goes by ``frame``.
    """
    keys = sorted(sequence, key=lambda k: k["frame"])
    before = [k for k in keys if k["frame"] <= frame]
    after = [k for k in keys if k["frame"] > frame]
    if not before or not (before[-1]["enabled"] or before[-1]["frame"] == frame):
        return None
    a = before[-1]
    b = after[0] if after else a
    t = 0.0 if b is a or a["frame"] == frame else (frame - a["frame"]) / (b["frame"] - a["frame"])
    x, y, w, h = ((1 - t) * a[p] + t * b[p] for p in ("x", "y", "width", "height"))
    width, height = moving_shapes.SIZE
    return [x / 100 * width, y / 100 * height, (x + w) / 100 * width, (y + h) / 100 * height]


def decoded_colour_boxes(video: moving_shapes.MovingVideo) -> dict[int, dict[str, list[int]]]:
    """Frame number (1-based, as the backend numbers them) -> box of each coloured object in OpenCV's frame."""
    import cv2

    out: dict[int, dict[str, list[int]]] = {}
    capture = cv2.VideoCapture(str(video.path))
    try:
        ok, frame = capture.read()
        while ok:
            rgb = frame[..., ::-1].astype(int)
            boxes = {}
            for name, bounds in COLOURS.items():
                mask = np.all([(lo <= rgb[..., c]) & (rgb[..., c] <= hi) for c, (lo, hi) in enumerate(bounds)], axis=0)
                ys, xs = np.nonzero(mask)
                if len(xs):
                    boxes[name] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
            out[len(out) + 1] = boxes
            ok, frame = capture.read()
    finally:
        capture.release()
    return out


def iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union else 0.0
