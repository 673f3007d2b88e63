"""Label Studio and YOLO data shapes, plain functions on plain data.

``label_config`` (what a config asks for, ``controls``), ``media_axis`` (image or video),
``convert`` (coordinates and the region envelope), ``overlap`` (every IoU, per geometry),
``ls_tasks`` (YOLO folder -> tasks), ``yolo_folder`` (reading YOLO folders, writing any dataset's
files and its ``data.yaml``) and ``yolo_export`` (Label Studio -> a YOLO dataset).
"""
