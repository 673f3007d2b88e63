"""Review a project: read its annotations, judge each image out of sample, write the flags back.

1. read the label config and the annotated tasks (refuse controls other than boxes);
2. fetch upright images and their label rows, as training does (``collect_examples``);
3. name the review version after the annotations and the plan: same data, same version;
4. predict each image with the fold model that never saw it (``folds``), score (``flags``);
5. store one prediction per flagged task, under the review version, skipping tasks that
   already hold one: a rerun after an interruption only writes what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from .. import kinds
from ..config import Settings
from ..formats import convert
from ..formats.controls import ControlSpec
from ..formats.ls_tasks import chosen_annotation
from ..labelstudio import ls_client
from ..media.fetcher import MediaFetcher
from ..progress import bar
from ..training.dataset import training_control
from ..training.image_dataset import collect_examples
from . import flags
from .folds import Plan, assign, doubtful, out_of_sample

log = logging.getLogger(__name__)


@dataclass
class Review:
    """Every reviewed task's verdict, with what is needed to draw its flags in Label Studio."""

    version: str
    spec: ControlSpec
    labels: list[str]
    verdicts: dict[Any, flags.Verdict] = field(default_factory=dict)
    sizes: dict[Any, tuple[int, int]] = field(default_factory=dict)  # upright image (width, height)
    left_out: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # folds whose flags of a kind were left out

    def flagged(self) -> list[tuple[Any, flags.Verdict]]:
        """Tasks with at least one flag, surest flag first (``Verdict.rank``: each kind by its own evidence)."""
        return sorted(((t, v) for t, v in self.verdicts.items() if v.flags), key=lambda item: item[1].rank)


def supported_control(config_xml: str) -> ControlSpec:
    """The reviewed control: a ``<RectangleLabels>`` on an ``<Image>``; others are refused with the reason."""
    spec = training_control(config_xml)
    kind = kinds.for_result(spec.kind, spec.task)
    if kind is not kinds.boxes.KIND or spec.media != "image":
        raise ValueError(f"review supports boxes only (<RectangleLabels> on an <Image>, a detect model); "
                         f"this project's control {spec.from_name!r} is {spec.kind}"
                         f"{' on ' + spec.media if spec.media != 'image' else ''}"
                         f"{' (' + spec.task + ')' if spec.task else ''}")
    return spec


def review_tasks(tasks: list[dict[str, Any]], config_xml: str, settings: Settings, media: MediaFetcher,
                 plan: Plan, rules: flags.Rules, work_root: Path, progress: bool | None = None) -> Review:
    """Steps 1-4 on task dicts in Label Studio's export format (no network but the images)."""
    spec = supported_control(config_xml)
    labels = kinds.boxes.KIND.train_classes(spec)
    examples, left_out = collect_examples(tasks, spec, settings, media, kind=kinds.boxes.KIND)
    plan.check(len(examples))
    version = review_version(examples, plan)
    work = work_root / version
    work.mkdir(parents=True, exist_ok=True)
    log.info("review %s: %d annotated images in %d folds, work folder %s", version, len(examples), plan.folds, work)
    shown = progress if progress is not None else sys.stderr.isatty()  # minutes per fold: worth a bar however few
    with bar(None, "review: train folds", "epoch", total=plan.folds * plan.epochs, show=shown) as epochs:
        judged = out_of_sample(examples, labels, spec, settings, plan, work, epochs.update)
    ids = list(judged)
    verdicts = flags.review([judged[t] for t in ids], len(labels), rules)
    review = Review(version, spec, labels, dict(zip(ids, verdicts)), left_out=left_out)
    drop_doubtful(review, [[e.task_id for e in part] for part in assign(examples, plan.folds)], judged)
    for example in examples:
        with PILImage.open(example.image) as image:
            review.sizes[example.task_id] = image.size
    return review


def drop_doubtful(review: Review, parts: list[list[Any]], judged: dict[Any, Any]) -> None:
    """Leave out the flags of a kind a fold's model raises implausibly often (``folds.doubtful``), saying so."""
    counts = [Counter(f.kind for t in part for f in review.verdicts[t].flags) for part in parts]
    boxes = [sum(len(judged[t].truth) for t in part) for part in parts]
    for index, kind, share in doubtful([dict(c) for c in counts], boxes):
        for task in parts[index]:
            review.verdicts[task] = review.verdicts[task].without(kind)
        review.warnings.append(f"fold {index + 1}'s model flagged {share:.0%} of its boxes as "
                               f"{flags.DESCRIPTION[kind]}, far more than the other folds: those "
                               f"{counts[index][kind]} flags are left out (its training was probably too short: "
                               "more --epochs)")


def review_version(examples: list[Any], plan: Plan) -> str:
    """``review-<k>fold-<hash>``: the hash of every label row, picture and the plan; any changed, a new version."""
    digest = hashlib.sha256()
    for example in sorted(examples, key=lambda e: str(e.task_id)):
        digest.update(json.dumps([str(example.task_id), list(example.lines), example.content]).encode())
    start = Path(plan.start)
    digest.update(json.dumps([plan.folds, plan.epochs, plan.imgsz, plan.batch, start.name,
                              start.stat().st_size if start.is_file() else 0]).encode())
    return f"review-{plan.folds}fold-{digest.hexdigest()[:8]}"


def prediction(task_id: Any, verdict: flags.Verdict, review: Review) -> dict[str, Any]:
    """A Label Studio prediction holding only the disputed regions; its score is the task's rank (lower first)."""
    width, height = review.sizes[task_id]
    return {"task": task_id, "model_version": review.version, "score": round(verdict.rank, 6),
            "result": [region(flag, index, width, height, review) for index, flag in enumerate(verdict.flags)]}


def region(flag: flags.Flag, index: int, width: int, height: int, review: Review) -> dict[str, Any]:
    """One flag as a rectangle (the annotated box, or the model's for a missed object), the issue in its meta text."""
    x1, y1, x2, y2 = flag.box  # the flagged box as it is, not clipped to the image
    value = {"x": convert.pct(100 * x1 / width), "y": convert.pct(100 * y1 / height),
             "width": convert.pct(100 * (x2 - x1) / width), "height": convert.pct(100 * (y2 - y1) / height),
             "rotation": 0}
    out = convert.region(value, review.labels[flag.label], result_type=kinds.boxes.KIND.RESULT_TYPE,
                         from_name=review.spec.from_name, to_name=review.spec.to_name, size=(width, height),
                         region_id=f"review-{index}")
    return {**out, "meta": {"text": [describe(flag, review.labels)]}}


def describe(flag: flags.Flag, labels: list[str]) -> str:
    """The reviewer's line: the kind first (what the Data Manager filters on), then the evidence."""
    seen = labels[flag.model_label] if flag.model_label is not None else ""
    detail = {
        "missed": f"the model sees a {seen} here ({flag.confidence:.2f}) and nothing is annotated",
        "spurious": f"no prediction of any class over this {labels[flag.label]} (best {flag.confidence:.2f})",
        "wrong_class": f"annotated {labels[flag.label]}, the model sees a {seen} ({flag.confidence:.2f})",
        "loose": f"the model's {seen} ({flag.confidence:.2f}) fits it badly",
    }[flag.kind]
    return f"{flags.DESCRIPTION[flag.kind]}: {detail}; review score {flag.score:.2f}"


@dataclass
class Outcome:
    """What a run did, for the summary on stdout."""

    version: str = ""
    annotated: int = 0
    written: int = 0
    skipped: int = 0  # flagged tasks already holding the review version
    review: Review | None = None
    replaced: str | None = None  # the project's selected model version before (None: left as it was)

    def summary(self, top: int = 20) -> str:
        review = self.review
        if review is None:
            return "review: nothing reviewed"
        flagged = review.flagged()
        counts = Counter(flag.kind for _, verdict in flagged for flag in verdict.flags)
        lines = [f"review version {self.version}: {len(review.verdicts)} of {self.annotated} annotated tasks "
                 f"reviewed, {len(flagged)} flagged; {self.written} predictions stored, {self.skipped} skipped "
                 f"(already stored), {len(review.left_out)} left out",
                 "  flags: " + ", ".join(f"{counts[k]} {flags.DESCRIPTION[k]}" for k in flags.KINDS)]
        if flagged:
            lines.append(f"  surest {min(top, len(flagged))} (task: rank, flags): " + "; ".join(
                f"{t}: {v.rank:.3f} {'+'.join(sorted({f.kind for f in v.flags}))}" for t, v in flagged[:top]))
        lines += [f"  warning: {warning}" for warning in review.warnings]
        if self.replaced is not None and self.replaced != self.version:
            lines.append(f"  the project's selected model version is now {self.version} (was {self.replaced!r}; "
                         "put it back under Settings -> Annotation -> Prelabeling)")
        return "\n".join(lines)


@dataclass(frozen=True)
class Options:
    """How a project is reviewed: the CLI's flags."""

    plan: Plan
    rules: flags.Rules
    work_root: Path  # fold models and predictions, under <work_root>/<project>/<version>
    progress: bool | None = None
    select: bool = True  # make the review version the project's selected one (see ``select_version``)
    chunk_size: int = 50  # predictions stored per request


def review_project(client: Any, project: int, settings: Settings, media: MediaFetcher, options: Options,
                   outcome: Outcome | None = None) -> Outcome:
    """The whole review of a Label Studio project (steps 1-5)."""
    outcome = outcome if outcome is not None else Outcome()
    config = ls_client.label_config(client, project)
    supported_control(config)  # before the export: a refused control costs nothing
    tasks = [t for t in ls_client.export_tasks(client, project) if chosen_annotation(t) is not None]
    outcome.annotated = len(tasks)
    review = review_tasks(tasks, config, settings, media, options.plan, options.rules,
                          options.work_root / str(project), options.progress)
    outcome.review, outcome.version = review, review.version
    have = ls_client.predicted_task_ids(client, project, review.version)
    todo = [prediction(t, v, review) for t, v in review.flagged() if t not in have]
    outcome.skipped = len(review.flagged()) - len(todo)
    with bar(None, "review: store", "task", total=len(todo), show=options.progress) as stored:
        for start in range(0, len(todo), options.chunk_size):
            chunk = todo[start:start + options.chunk_size]
            outcome.written += ls_client.store_predictions(client, project, chunk)
            stored.update(len(chunk))
    if options.select:
        outcome.replaced = select_version(client, project, review.version)
    return outcome


def select_version(client: Any, project: int, version: str) -> str:
    """Make ``version`` the project's selected model version; returns the one it replaces.

    Label Studio 1.23's Data Manager column "Prediction score" averages only the predictions
    of the selected version (none selected: it stays empty), and the labeling view shows that
    version's regions: selected, the review's tasks sort worst first and open with their
    disputed regions drawn.
    """
    before = client.projects.get(id=project).model_version or ""
    if before != version:
        client.projects.update(id=project, model_version=version)
    return before
