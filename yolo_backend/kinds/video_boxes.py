"""Video boxes: ``<VideoRectangle>`` regions, one tracked object through a ``<Video>``.

A region is a whole track: ``value.sequence`` holds its keyframes (``frame`` 1-based,
``time`` = frame / fps as Label Studio's own editor writes it, ``enabled: false`` where the
object leaves), ``labels`` its label (from a ``<Labels>`` control on the same video, not
the rectangle control), plus ``framesCount`` and ``duration``. Prediction tracks with
``video.tracking`` and writes keyframes with ``video.keyframes``; training samples the
interpolated boxes of annotated tracks into frames (``video.annotations``). Per frame a box
is a box: the per-frame value and YOLO row are ``boxes``'.
"""

from __future__ import annotations

from .boxes import Boxes

LABEL_KEY = "labels"  # value[LABEL_KEY]: the label, set by a <Labels> control

# per-control options (<VideoRectangle model_tracker="botsort" ...>), read by video.predict
TRACKER_ATTRIBUTE = "model_tracker"  # bytetrack | botsort | a tracker yaml under MODEL_ROOT
CONF_ATTRIBUTE = "model_conf"  # detection threshold fed to the tracker
IOU_ATTRIBUTE = "model_iou"  # NMS IoU of the detector
STRIDE_ATTRIBUTE = "model_frame_stride"  # track every n-th frame (speed); Label Studio interpolates between


class VideoBoxes(Boxes):
    """Boxes of another medium: per frame a box is a box (its value, row and tasks are ``Boxes``')."""

    CONTROL = "VideoRectangle"
    RESULT_TYPE = "videorectangle"
    MEDIA = "video"  # the object tag it is bound to


KIND = VideoBoxes()
