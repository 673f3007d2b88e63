"""Out-of-sample predictions for every annotated image: k models, each judging the fold it never saw.

Each fold's model is trained by the product's own recipe (``training.fitting.fit``, from
the base checkpoint, never from a model trained on this project, which has seen every
image) on the other folds, then predicts its own fold as the service would
(``training.holdout.predict_holdout``). Models and predictions are kept under the review's work
folder, so an interrupted review resumes at the first fold it had not finished.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import kinds
from ..config import Settings
from ..core.split import groups
from ..formats.controls import ControlSpec
from ..training import scoring
from ..training.examples import Example, carve_val, write_dataset

log = logging.getLogger(__name__)

KEPT_SCORE = 0.01  # predictions kept per image: lower ones never count (flags.Rules.min_score is above)
DOUBT_SHARE = 0.1  # over a tenth of a fold's boxes flagged with one kind: 2.5x the benchmark's corruption of it
DOUBT_FACTOR = 3.0  # and 3x the other folds' median: not the luck of the split
Epochs = Callable[[int], None]  # told each finished epoch (count 1), for the progress bar


@dataclass(frozen=True)
class Plan:
    """How the fold models are trained: the CLI's flags, defaults sized for a CPU."""

    folds: int = 4  # each model trains on 3/4 of the images: close to the final model's quality
    epochs: int = 10
    imgsz: int = 320
    batch: int = 8  # with nbs = batch, every batch is an optimizer step: small projects learn in few epochs
    start: str = ""  # the base checkpoint (MODEL_ROOT/MODEL_PATH by default)

    def check(self, images: int) -> None:
        if self.folds < 2:
            raise ValueError("--folds must be at least 2: a model must not judge the images it trained on")
        if images < 2 * self.folds:
            raise ValueError(f"{images} annotated images are too few for {self.folds} folds: "
                             f"annotate at least {2 * self.folds}, or pass a smaller --folds")
        if self.imgsz < 32 or self.imgsz % 32:
            raise ValueError("--imgsz must be a multiple of 32 (at least 32)")


def assign(examples: Sequence[Example], folds: int) -> list[list[Example]]:
    """Folds of about equal size, stable per picture whatever the order given.

    Training's groups (``core.split.groups``: identical image bytes, in any task) are dealt in
    rank order, each to the smallest fold so far: a picture imported twice sits in one fold,
    never in the training part of the model that judges its twin.
    """
    dealt: list[list[Example]] = [[] for _ in range(folds)]
    for group in groups(examples, "review"):
        min(dealt, key=len).extend(group)
    return dealt


def doubtful(flagged: list[dict[str, int]], boxes: list[int]) -> list[tuple[int, str, float]]:
    """(fold, kind, share of its boxes) where a fold's model, more likely than its labels, is wrong.

    Folds are random parts of one project, so each holds about the same share of errors of
    each kind. A fold flagging over ``DOUBT_SHARE`` of its boxes with one kind, and over
    ``DOUBT_FACTOR`` times the other folds' median, says more about its model (a short
    training that confused the classes) than about its labels.
    """
    out = []
    for index, counts in enumerate(flagged):
        for kind, count in counts.items():
            share = count / max(boxes[index], 1)
            others = sorted(f.get(kind, 0) / max(b, 1) for i, (f, b) in enumerate(zip(flagged, boxes)) if i != index)
            median = others[len(others) // 2] if others else 0.0
            if share > DOUBT_SHARE and share > DOUBT_FACTOR * median:
                out.append((index, kind, share))
    return out


def out_of_sample(examples: Sequence[Example], labels: list[str], spec: ControlSpec, settings: Settings,
                  plan: Plan, work: Path, epoch_done: Epochs = lambda n: None) -> dict[Any, scoring.Image]:
    """Every example's image judged by the model of the fold it was held out of, keyed by task id."""
    kind = kinds.for_result(spec.kind, spec.task)
    tuned = settings.replace(train_epochs=plan.epochs, train_imgsz=plan.imgsz, train_batch=plan.batch,
                             train_patience=0)
    judged: dict[Any, scoring.Image] = {}
    for index, held in enumerate(assign(examples, plan.folds)):
        cached = work / f"fold-{index}.json"
        if not cached.is_file():
            held_groups = {e.group for e in held}  # a twin of a held picture never trains its judge
            train = [e for e in examples if e.group not in held_groups]
            model = _fold_model(index, train, labels, tuned, plan, work, epoch_done)
            images = _predict(model, held, spec, tuned, kind)
            _write_json(cached, {str(e.task_id): _to_json(image) for e, image in zip(held, images)})
        else:
            epoch_done(plan.epochs)
        stored = json.loads(cached.read_text())
        judged.update({e.task_id: _from_json(stored[str(e.task_id)]) for e in held})
    return judged


def _fold_model(index: int, train: list[Example], labels: list[str], settings: Settings, plan: Plan, work: Path,
                epoch_done: Epochs) -> Path:
    """The fold's checkpoint, trained now unless a finished one is kept (``fold-<i>.pt``)."""
    target = work / f"fold-{index}.pt"
    if target.is_file():
        epoch_done(plan.epochs)
        return target
    import ultralytics  # noqa: F401  (importing it sets its logger's level: quieted after, not before)

    from ..training.fitting import fit  # torch and Ultralytics: only once there is something to train

    run = work / "runs" / f"fold-{index}"
    shutil.rmtree(run, ignore_errors=True)  # a fold interrupted mid-training starts over
    train, val = carve_val(train)
    data = write_dataset(run / "dataset", {"train": train, "val": val}, labels)
    log.info("review: fold %d of %d, training on %d images", index + 1, plan.folds, len(train))
    with _quiet("ultralytics"):  # its per-epoch tables would bury the review's own progress and summary
        best = fit(plan.start, labels, data, run, settings, lambda info: epoch_done(1))
    tmp = target.with_suffix(".pt.tmp")
    shutil.copyfile(best, tmp)
    os.replace(tmp, target)  # a kept model is always a whole one
    shutil.rmtree(run, ignore_errors=True)
    return target


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only warnings from logger ``name`` while the block runs."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _predict(model: Path, held: list[Example], spec: ControlSpec, settings: Settings,
             kind: kinds.Kind) -> list[scoring.Image]:
    from ..training.holdout import predict_holdout

    return predict_holdout(model, held, spec, settings, kind)


def _to_json(image: scoring.Image) -> dict[str, Any]:
    return {"found": [[f.label, round(f.score, 5), *[round(v, 2) for v in f.box]] for f in image.found
                      if f.score >= KEPT_SCORE],
            "truth": [[t.label, *[round(v, 3) for v in t.box]] for t in image.truth]}


def _from_json(data: dict[str, Any]) -> scoring.Image:
    return scoring.Image(tuple(scoring.Found(int(r[0]), float(r[1]), tuple(r[2:6])) for r in data["found"]),
                         tuple(scoring.Truth(int(r[0]), tuple(r[1:5])) for r in data["truth"]))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
