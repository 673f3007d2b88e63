"""The HTTP face: Label Studio's routes (``http_api``), their OpenAPI document, the status page, exposure.

It receives the backend (and through it the trainer) from the app factory; it never imports training.
"""
