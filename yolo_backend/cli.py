"""yolo-ls: the batch side of the YOLO backend, for folders and whole Label Studio projects.

    yolo-ls import-yolo DATASET -o tasks.json    YOLO folder -> Label Studio tasks (JSON import)
    yolo-ls export-yolo --project 3 -o dataset   Label Studio annotations -> YOLO dataset
    yolo-ls prelabel --project 3                 predict every task lacking the current model version
    yolo-ls review --project 3                   flag probably wrong annotations (k-fold models + cleanlab)

Exit status: 0 all done, 1 done but some items failed (listed), 2 bad usage or setup.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from . import kinds
from .labelstudio import ls_client

if TYPE_CHECKING:
    from .formats.controls import ControlSpec
from .config import SETTINGS
from .core.checkpoints import safe_model_path
from .errors import BackendError

EPILOG = "Environment: LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY (and MODEL_ROOT, MODEL_PATH, ... for prelabel)."


def _env(*names: str, default: str = "") -> str:
    return next((os.environ[n] for n in names if os.environ.get(n)), default)


def _setting(name: str) -> str:
    """A service setting from the environment, else its default (``config.SETTINGS``)."""
    return _env(name, default=next(var.default for var in SETTINGS if var.env == name))


def _classes(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _add_connection(parser: argparse.ArgumentParser, required: bool = False) -> None:
    group = parser.add_argument_group("Label Studio")
    group.add_argument("--url", default=_env("LABEL_STUDIO_URL", default="http://localhost:8080"),
                       help="Label Studio base URL (default: $LABEL_STUDIO_URL or %(default)s)")
    group.add_argument("--api-key", default=_env("LABEL_STUDIO_API_KEY"),
                       help="legacy token or personal access token (default: $LABEL_STUDIO_API_KEY)")
    group.add_argument("--project", type=int, required=required, help="project id (the number in its URL)")


def _add_allowed_hosts(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--allowed-hosts", default=_env("MEDIA_ALLOWED_HOSTS"),
                        help="private image hosts besides --url, e.g. MinIO or a LAN file server: host, host:port "
                             f"or CIDR, comma-separated{what} (default: $MEDIA_ALLOWED_HOSTS)")


def _add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar (default: on a terminal, for 50+ items)")


def _import_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "import-yolo", help="YOLO folder -> Label Studio tasks JSON", epilog=EPILOG,
        description="Convert a folder of images with YOLO labels (class cx cy w h) into Label Studio tasks. "
                    "Layouts: images/<split> + labels/<split> (Ultralytics), <split>/[images/] + <split>/labels, "
                    "or flat. Class names from data.yaml, classes.txt, or --classes.")
    p.add_argument("folder", type=Path, help="dataset folder")
    p.add_argument("-o", "--output", type=Path, default=Path("tasks.json"), help="tasks file (default %(default)s)")
    p.add_argument("--classes", help="comma-separated class names, index order (overrides data.yaml)")
    p.add_argument("--as", dest="as_", choices=("predictions", "annotations"), default="predictions",
                   help="write boxes as pre-annotations (default) or as finished annotations")
    p.add_argument("--model-version", default="yolo-import", help="version name of the predictions (%(default)s)")
    p.add_argument("--type", choices=kinds.RESULT_TYPES, default=kinds.RESULT_TYPES[0],
                   help="region type; must match the project's control tag (default %(default)s)")
    p.add_argument("--obb", action="store_true",
                   help="label rows are oriented boxes (c x1 y1 ... x4 y4): rotated rectangles")
    p.add_argument("--keypoints", help="pose rows (--type keypointlabels): comma-separated keypoint labels in "
                                       "index order (default: data.yaml kpt_names)")
    p.add_argument("--from-name", default="label", help="name of the labels control (default %(default)s)")
    p.add_argument("--to-name", default="image", help="name of the <Image> tag (default %(default)s)")
    p.add_argument("--data-key", default="image", help="task data field, $<key> in <Image value> (%(default)s)")
    urls = p.add_mutually_exclusive_group()
    urls.add_argument("--document-root",
                      default=_env("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", "LOCAL_FILES_DOCUMENT_ROOT") or None,
                      help="local-files root: URLs become /data/local-files/?d=<path under it> "
                           "(default: $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
    urls.add_argument("--url-prefix", help="URL prefix + image path under FOLDER, e.g. https://host/data or s3://b/x")
    p.add_argument("--missing", choices=("empty", "skip", "whole"), default="empty",
                   help="image without label file: empty task (default), skip it, or one whole-image box")
    p.add_argument("--whole-class", default=None, help="class name of the --missing whole box (default: class 0)")
    _add_connection(p)
    p.epilog = EPILOG + " With --project, the tasks are also imported into that project."
    _add_progress(p)
    p.set_defaults(run=_run_import)


def _export_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "export-yolo", help="Label Studio annotations -> YOLO dataset", epilog=EPILOG,
        description="Write images and YOLO labels in the Ultralytics layout (images/<split>, labels/<split>, "
                    "data.yaml) from a JSON export file or straight from a project. Skipped annotations are "
                    "left out; val is the holdout training scores on (stable by task id), test comes from the "
                    "rest.")
    p.add_argument("-o", "--output", type=Path, required=True, help="new (or empty) dataset folder")
    p.add_argument("--from-file", type=Path, help="Label Studio JSON export (instead of --project)")
    p.add_argument("--classes", help="class names in index order (default: the project's labels, else sorted)")
    p.add_argument("--data-key", help="task data field holding the image (default: the first)")
    p.add_argument("--from-name", help="only regions of this control (default: every supported control)")
    p.add_argument("--obb", action="store_true",
                   help="oriented boxes: rectangles as 4 rotated corners, for `yolo train task=obb`")
    p.add_argument("--task", choices=("detect", "segment", "obb", "pose", "classify"),
                   help="the Ultralytics task to write for (default: the exported control's own; "
                        "classify writes class folders, pose writes kpt_shape and flip_idx)")
    p.add_argument("--label-config", type=Path,
                   help="the project's label config XML, with --from-file (default: fetched with --project)")
    p.add_argument("--val", type=float, default=_setting("TRAIN_HOLDOUT"),
                   help="share of tasks in val, training's holdout (default: $TRAIN_HOLDOUT, %(default)s)")
    p.add_argument("--min-val", type=int, default=_setting("TRAIN_MIN_HOLDOUT"),
                   help="fewest tasks in val when --val > 0, training's floor (default: $TRAIN_MIN_HOLDOUT, "
                        "%(default)s)")
    p.add_argument("--test", type=float, default=0.0,
                   help="share of tasks in test, taken from the training part (default %(default)s)")
    p.add_argument("--frame-stride", type=int, default=_setting("TRAIN_FRAME_STRIDE"),
                   help="a <VideoRectangle> control: every n-th frame of annotated tracks, plus their keyframes, "
                        "as training does (default: $TRAIN_FRAME_STRIDE, %(default)s)")
    p.add_argument("--document-root",
                   default=_env("LOCAL_FILES_DOCUMENT_ROOT", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"),
                   help="read /data/local-files/ images from this folder instead of over HTTP")
    _add_connection(p)
    _add_allowed_hosts(p, "")
    _add_progress(p)
    p.set_defaults(run=_run_export)


def _prelabel_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "prelabel", help="predict every task of a project that lacks the current model version", epilog=EPILOG,
        description="Pre-label a project in chunks: tasks that already hold a prediction of the current model "
                    "version are skipped, so an interrupted run resumes where it stopped. Predicts in this "
                    "process (MODEL_ROOT/MODEL_PATH) or through a running backend (--backend).")
    _add_connection(p, required=True)
    p.add_argument("--backend", help="URL of a running backend: it runs the job (its bulk workers, RQ with "
                                      "REDIS_URL) and this follows the progress; default: predict in this process")
    p.add_argument("--backend-user", default=os.environ.get("BASIC_AUTH_USER", ""), help="its basic-auth user")
    p.add_argument("--backend-password", default=os.environ.get("BASIC_AUTH_PASS", ""), help="its password")
    p.add_argument("--model-root", help="folder holding checkpoints (default: $MODEL_ROOT)")
    p.add_argument("--model-path", help="checkpoint under the model root (default: $MODEL_PATH)")
    p.add_argument("--model-version", help="store and resume under this version (default: the model's own)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="predictions stored per request (default 50; 1 for video projects: each video is stored "
                        "as soon as it is tracked, so an interrupted run loses at most the one in progress)")
    p.add_argument("--workers", type=int, default=2, help="tasks predicted concurrently (%(default)s)")
    _add_allowed_hosts(p, "; without --backend only (a backend uses its own MEDIA_ALLOWED_HOSTS)")
    _add_progress(p)
    p.set_defaults(run=_run_prelabel)


def _review_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "review", help="flag annotations that are probably wrong: missed, spurious, wrong class, loose",
        epilog=EPILOG, description="Train --folds models on the project's boxes, each without one fold, judge "
        "every image with the model that never saw it, score with cleanlab's ObjectLab, and store one "
        "prediction per flagged task under its own model version (review-<k>fold-<hash>) holding the "
        "disputed regions; its score ranks the task by its surest flag (lower: look first). Resumable: kept fold "
        "models are reused and tasks holding the version are skipped. Boxes only (docs/review.md).")
    _add_connection(p, required=True)
    p.add_argument("--folds", type=int, default=4, help="models trained, each without one fold (%(default)s)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per fold model (%(default)s)")
    p.add_argument("--imgsz", type=int, default=320, help="training image size of the fold models (%(default)s)")
    p.add_argument("--batch", type=int, default=8, help="batch size, also the nominal batch (%(default)s)")
    p.add_argument("--start", help="checkpoint the fold models start from (default: MODEL_ROOT/MODEL_PATH); "
                                   "never a model trained on this project, which has seen every image")
    p.add_argument("--confident", type=float, default=0.5,
                   help="a prediction this sure is an object: missed objects and wrong classes (%(default)s)")
    p.add_argument("--top", type=int, default=20, help="worst tasks listed in the summary (%(default)s)")
    p.add_argument("--work", type=Path, help="folder for fold models and predictions (default: MODEL_DIR/review)")
    p.add_argument("--select-version", action=argparse.BooleanOptionalAction, default=True,
                   help="make the review version the project's selected one, so the Data Manager's Prediction "
                        "score column sorts by it (default: on)")
    p.add_argument("--document-root",
                   default=_env("LOCAL_FILES_DOCUMENT_ROOT", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"),
                   help="read /data/local-files/ images from this folder instead of over HTTP")
    _add_allowed_hosts(p, "")
    _add_progress(p)
    p.set_defaults(run=_run_review)


def _int8_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "int8", help="make and judge the int8 copy of a base model on a labeled YOLO folder (INT8=true serves it)",
        epilog=EPILOG, description="Trained versions get their int8 copy from the training run. A base model "
        "(MODEL_ROOT/MODEL_PATH) has no holdout, so it gets one here: the folder's labeled images alternate, odd "
        "ones judge and even ones calibrate; the copy serves only when mAP50-95 and F1 at MODEL_SCORE_THRESHOLD "
        "each fall by at most INT8_MAX_DROP against fp32. Written to MODEL_DIR/runtime (docs/speed.md).")
    p.add_argument("folder", type=Path, help="images with YOLO labels whose class ids are the model's")
    p.add_argument("--model", type=Path, help="checkpoint (default: MODEL_ROOT/MODEL_PATH, what the service loads)")
    p.set_defaults(run=_run_int8)


def _run_int8(args: argparse.Namespace) -> int:
    from .config import Settings
    from .training.quantize import for_base

    settings = Settings.from_env()
    checkpoint = args.model or safe_model_path(settings.model_root_path, settings.model_path)  # as the service
    if not checkpoint.is_file():
        raise ValueError(f"no checkpoint at {checkpoint}: pass --model PATH or set MODEL_ROOT/MODEL_PATH")
    gate = for_base(checkpoint, args.folder, settings)
    print(json.dumps(gate, indent=1))
    return 0 if gate["ok"] else 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yolo-ls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run 'yolo-ls <command> --help' for the options of each command.")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "WARNING"), help="(default %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add in (_import_parser, _export_parser, _prelabel_parser, _review_parser, _int8_parser):
        add(commands)
    return parser


# -- commands ------------------------------------------------------------------------------
def _run_import(args: argparse.Namespace) -> int:
    from .formats.ls_tasks import TaskFormat, convert_samples, local_files_url, prefixed_url
    from .formats.yolo_folder import class_folder_names, class_names, find_class_samples, find_samples, keypoint_names

    folders = args.type == kinds.classes.KIND.RESULT_TYPE  # choices: class folders <split>/<class>/<image>, no labels
    names = dict(enumerate(_classes(args.classes) or class_folder_names(args.folder))) if folders \
        else class_names(args.folder, _classes(args.classes))
    whole = 0
    if args.whole_class is not None:
        whole = next((i for i, n in names.items() if n == args.whole_class), None)
        if whole is None:
            raise ValueError(f"--whole-class {args.whole_class!r} is not one of {list(names.values())}")
    if args.url_prefix:
        url_for = lambda image: prefixed_url(image, args.folder, args.url_prefix)  # noqa: E731
    elif args.document_root:
        url_for = lambda image: local_files_url(image, Path(args.document_root))  # noqa: E731
    else:
        raise ValueError("say where Label Studio finds the images: --document-root (local files) or --url-prefix")
    fmt = TaskFormat(args.from_name, args.to_name, args.data_key, args.type, args.as_ == "annotations",
                     args.model_version, args.missing, whole, task="obb" if args.obb else None,
                     keypoint_names=tuple(_classes(args.keypoints) or keypoint_names(args.folder)))
    samples = find_class_samples(args.folder, names) if folders else find_samples(args.folder)
    done = convert_samples(samples, names, fmt, url_for, args.progress)
    args.output.write_text(json.dumps(done.tasks, indent=1))
    _list_problems("failed", [f"{path}: {reason}" for path, reason in done.failed])
    print(f"{done.summary()} -> {args.output}")
    if args.project:
        client = ls_client.connect(args.url, args.api_key)
        print(f"imported {ls_client.import_tasks(client, args.project, done.tasks)} tasks into project {args.project}")
    return 1 if done.failed else 0


def _run_export(args: argparse.Namespace) -> int:
    import tempfile

    from .formats import media_axis
    from .formats.yolo_export import ExportOptions, label_names, write_dataset
    from .labelstudio.ls_auth import LabelStudioAuth
    from .media.fetcher import DiskCache, MediaFetcher

    if bool(args.from_file) == bool(args.project):
        raise ValueError("give either --from-file EXPORT.json or --project ID")
    client = ls_client.connect(args.url, args.api_key) if args.project else None
    tasks = json.loads(args.from_file.read_text()) if args.from_file else ls_client.export_tasks(client, args.project)
    spec = _export_control(client, args)
    task = "obb" if args.obb else args.task
    kind = kinds.for_result(spec.kind, task or spec.task) if spec else None
    task = task or (kind.TRAIN_TASK if kind and kind.TRAIN_TASK in ("pose", "classify", "obb") else None)
    names = _classes(args.classes) or (kind.train_classes(spec) if kind and spec else None) or label_names(tasks)
    media = media_axis.of(spec)  # a video's annotated tracks export as frames, named task-<id>-frame-<n>
    options = ExportOptions(args.data_key, args.from_name, args.val, args.test, args.min_val, task=task, spec=spec,
                            frame_stride=int(args.frame_stride), max_video_seconds=float(_setting("MAX_VIDEO_SECONDS")))
    with tempfile.TemporaryDirectory(prefix="yolo-ls-export-") as cache:
        fetcher = MediaFetcher(LabelStudioAuth(args.url, args.api_key), DiskCache(Path(cache), 2**40),
                               local_root=args.document_root or "", allowed_hosts=args.allowed_hosts,
                               max_video_bytes=int(_setting("MAX_VIDEO_MB")) * 2**20)
        report = write_dataset(tasks, args.output, names, functools.partial(media.file, fetcher), options,
                               args.progress)
    _list_problems("left out", [f"task {task_id}: {reason}" for task_id, reason in report.left_out])
    print(f"{report.summary()} -> {args.output / 'data.yaml'} (classes: {', '.join(names)})")
    return 0


def _list_problems(what: str, lines: list[str], limit: int = 20) -> None:
    """The first ``limit`` problems on stderr, then a count: a run over thousands stays readable."""
    for line in lines[:limit]:
        print(f"{what}: {line}", file=sys.stderr)
    if len(lines) > limit:
        print(f"... and {len(lines) - limit} more {what}", file=sys.stderr)


def _export_control(client: object, args: argparse.Namespace) -> ControlSpec | None:
    """The exported control: --from-name's (else the first) of the project's label config or --label-config."""
    from .formats.label_config import parse

    config = args.label_config.read_text() if args.label_config else (
        ls_client.label_config(client, args.project) if client else None)
    if not config:
        return None
    specs = parse(config)
    chosen = [spec for spec in specs if spec.from_name == args.from_name] if args.from_name else list(specs)
    if not chosen:
        raise ValueError(f"--from-name {args.from_name!r} is not a control of the label config "
                         f"({', '.join(spec.from_name for spec in specs)})")
    return chosen[0]


def _run_prelabel(args: argparse.Namespace) -> int:
    import httpx
    import requests

    from .app import in_process_backend
    from .labelstudio.prelabel import BackendAnswerError, BackendJob, InProcessPredictor, Outcome, prelabel

    outcome = Outcome()
    try:
        if args.backend:  # the backend's bulk job: its workers predict and store, this follows the progress
            auth = (args.backend_user, args.backend_password) if args.backend_user else None
            BackendJob(args.backend, auth).follow(args.project, outcome, args.progress)
        else:
            client = ls_client.connect(args.url, args.api_key)
            config = ls_client.label_config(client, args.project)
            with _environment(MEDIA_ALLOWED_HOSTS=args.allowed_hosts):  # in_process_backend reads its Settings
                backend = in_process_backend(args.url, args.api_key, args.model_root, args.model_path)
            prelabel(client, args.project, InProcessPredictor(backend, args.project, config),
                     args.chunk_size or _prelabel_chunk(config), args.workers, args.model_version, args.progress,
                     outcome)
    except BackendAnswerError as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        outcome.failed.append((-1, exc.summary, exc.message))
    except KeyboardInterrupt:
        print("interrupted: what was stored stays; run again to resume", file=sys.stderr)
        outcome.failed.append((-1, "interrupted", "Ctrl-C"))
    except (httpx.TransportError, requests.RequestException) as exc:  # Label Studio or the backend went away
        print(f"stopped: {ls_client.error_text(exc)}; what was stored stays, run again to resume", file=sys.stderr)
        outcome.failed.append((-1, "stopped", ls_client.error_text(exc)))
    print(outcome.summary())
    return 1 if outcome.failed else 0


def _run_review(args: argparse.Namespace) -> int:
    from .config import Settings
    from .media.fetcher import MediaFetcher
    from .review.flags import Rules
    from .review.folds import Plan
    from .review.project import Options, Outcome, review_project

    settings = Settings.from_env(label_studio_url=args.url, label_studio_api_key=args.api_key,
                                 local_files_document_root=args.document_root or "",
                                 media_allowed_hosts=args.allowed_hosts or "")
    start = Path(args.start) if args.start else safe_model_path(settings.model_root_path, settings.model_path)
    if not start.is_file():
        raise ValueError(f"no base checkpoint at {start}: pass --start PATH or set MODEL_ROOT/MODEL_PATH "
                         "(a pretrained model such as yolo11n.pt; not one trained on this project)")
    plan = Plan(args.folds, args.epochs, args.imgsz, args.batch, str(start))
    client = ls_client.connect(args.url, args.api_key)
    outcome = Outcome()
    try:
        options = Options(plan, Rules(confident=args.confident), args.work or settings.model_dir_path / "review",
                          args.progress, args.select_version)
        review_project(client, args.project, settings, MediaFetcher.from_settings(settings), options, outcome)
    except KeyboardInterrupt:
        print("interrupted: finished folds and stored predictions stay; run again to resume", file=sys.stderr)
        print(outcome.summary(args.top))
        return 1
    print(outcome.summary(args.top))
    return 0


def _prelabel_chunk(config: str) -> int:
    """Predictions stored per request: the least any control's media asks (a video is stored once tracked)."""
    from .formats import label_config, media_axis

    try:
        specs = label_config.parse(config)
    except Exception:  # the backend will say what is wrong with the config, per task
        specs = []
    return min([media_axis.of(spec).prelabel_chunk for spec in specs] or [media_axis.IMAGE.prelabel_chunk])


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables set for the block, then put back as they were."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in before.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, FileExistsError, BackendError) as exc:
        print(f"yolo-ls {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if getattr(exc, "status_code", None) is None:  # not an answer of Label Studio: a bug, keep the traceback
            raise
        print(f"yolo-ls {args.command}: {ls_client.error_text(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
