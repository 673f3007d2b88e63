"""Label Studio and YOLO data shapes, plain functions on plain data.

``label_config`` (what a config asks for, ``controls``), ``convert`` (coordinates and the region
envelope), ``overlap`` (IoU per geometry), ``ls_tasks`` (YOLO folder -> tasks), ``yolo_folder``
(reading YOLO folders) and ``yolo_export`` (Label Studio -> a YOLO dataset).
"""
