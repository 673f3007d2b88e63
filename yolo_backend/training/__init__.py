"""Retrain on submit: background training runs, holdout evaluation, versioned models per project.

The recipe (``train``) reads top to bottom: collect annotated tasks, write a YOLO
dataset, train, evaluate on a holdout, publish. Everything it keeps lives in
``MODEL_DIR/projects/<id>/``, written atomically, so a run killed at any point
leaves the served model and the registry as they were.
"""

from .trainer import ProjectTrainer, build_trainer

__all__ = ["ProjectTrainer", "build_trainer"]
