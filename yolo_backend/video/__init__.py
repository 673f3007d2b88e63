"""Video tasks, read top to bottom: frames -> tracks -> keyframes.

``frames`` streams a video's frames (one decoded at a time, a stride skipping the rest
undecoded) within a duration and size bound; ``tracking`` runs the detector on them and
links its boxes into tracks with one of Ultralytics' trackers; ``keyframes`` thins each
track to the frames Label Studio cannot interpolate and writes its ``videorectangle``
region. The service's ``/predict`` and ``yolo-ls`` wire these in (issue 13).
"""
