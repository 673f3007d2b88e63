"""TRAIN_STEPS: a run's epochs shrink as the project grows, so its time stays about the same."""

from __future__ import annotations

import pytest

from yolo_backend.config import Settings
from yolo_backend.training.train import epochs_for


def test_no_limit_trains_train_epochs() -> None:
    settings = Settings.from_env({"TRAIN_EPOCHS": "40", "TRAIN_BATCH": "8"})
    assert epochs_for(300, settings) == 40


@pytest.mark.parametrize(("images", "epochs"), [(8, 40), (30, 37), (60, 18), (240, 5), (2000, 1)])
def test_steps_cut_epochs_as_images_grow(images: int, epochs: int) -> None:
    settings = Settings.from_env({"TRAIN_EPOCHS": "40", "TRAIN_BATCH": "8", "TRAIN_STEPS": "150"})
    assert epochs_for(images, settings) == epochs
    steps = epochs * -(-images // 8)
    assert steps <= 150 or epochs == 1


def test_negative_steps_are_refused() -> None:
    with pytest.raises(ValueError, match="TRAIN_STEPS"):
        Settings.from_env({"TRAIN_STEPS": "-1"})
