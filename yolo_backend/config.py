"""Every setting of the service, read once from the environment.

Each setting is named once: a field of ``Settings`` with its type, default and why
(``Env``); its environment variable is the field's name upper-cased. ``SETTINGS``, the
table the README's settings section is generated from (``python -m yolo_backend.config``),
is read off those fields, so a new variable is documented by adding its field.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Mapping, get_type_hints


@dataclass(frozen=True)
class Env:
    """How a ``Settings`` field is read: its default (text, as the environment gives it) and why it exists."""

    default: str
    why: str


@dataclass(frozen=True)
class Var:
    """One environment variable: its name, default and why it exists (a row of ``SETTINGS``)."""

    env: str
    default: str
    kind: type
    why: str


def _unit_number(value: object) -> bool:
    """Whether ``value`` reads as a number from 0 to 1."""
    try:
        return 0.0 <= float(value) <= 1.0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _field_name(var: Var) -> str:
    return var.env.lower()


def _parse(var: Var, raw: str) -> Any:
    """``var``'s value from its text; booleans accept true/false, 1/0, yes/no, on/off."""
    if var.kind is bool:
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(raw)
    return var.kind(raw)


@dataclass(frozen=True)
class Settings:
    """Every setting, typed; its default and why in ``Env``. Build with ``Settings.from_env()``."""

    label_studio_url: Annotated[str, Env(
        "http://localhost:8080", "Label Studio base URL: image downloads, presigning, training data.")]
    label_studio_api_key: Annotated[str, Env(
        "", "Legacy token or personal access token (a PAT is exchanged for short-lived access tokens).")]
    basic_auth_user: Annotated[str, Env(
        "", "When set with BASIC_AUTH_PASS, every route but /health and /webhook needs it.")]
    basic_auth_pass: Annotated[str, Env("", "Password for BASIC_AUTH_USER (compared in constant time).")]
    admin_open: Annotated[bool, Env(
        "false", "Without basic auth, the admin routes (/status, its plots, /training/status, /training/rollback, "
        "/metrics, /bulk/*) answer 401; true opens them to anyone who reaches the service. No effect when basic auth "
        "is set.")]
    model_root: Annotated[str, Env(
        "./models", "The only folder checkpoints are loaded from (MODEL_PATH, model_path=).")]
    model_path: Annotated[str, Env(
        "yolov5nu.pt", "Base checkpoint, relative to MODEL_ROOT (any Ultralytics detect/segment model).")]
    weights_download: Annotated[bool, Env(
        "true", "On first start, fetch MODEL_PATH when it is a published Ultralytics checkpoint missing from "
        "MODEL_ROOT (once, in the background); false for air-gapped sites.")]
    weights_url: Annotated[str, Env(
        "https://github.com/ultralytics/assets/releases/download/v8.4.0", "Where published checkpoints are fetched "
        "from: Ultralytics' release folder, or your mirror of it.")]
    weights_sha256: Annotated[str, Env(
        "", "sha256 the fetched MODEL_PATH must have (your mirror's file, or a published name with no digest built "
        "in); empty = the digest pinned for that name.")]
    weights_url_insecure: Annotated[bool, Env(
        "false", "Allow a plain-http WEIGHTS_URL (a mirror on a trusted network); the digest is still checked.")]
    model_dir: Annotated[str, Env(
        "./data/models", "Writable state: trained versions, registry, run status, image cache.")]
    model_score_threshold: Annotated[float, Env(
        "0.5", "Regions below this score are dropped (per control: model_score_threshold).")]
    task_score: Annotated[str, Env(
        "uncertainty", "A prediction's task score, which Label Studio's Data Manager sorts by: uncertainty (low = "
        "most borderline objects, sort ascending to label those first; docs/uncertainty.md) or mean (the mean region "
        "score).")]
    local_files_document_root: Annotated[str, Env(
        "", "Label Studio's local-files root, mounted here: such images are read from disk, not over HTTP.")]
    device: Annotated[str, Env("auto", "auto picks cuda, then mps, then cpu; or name one (cpu, cuda:0).")]
    imgsz: Annotated[str, Env(
        "auto", "Inference image size: auto = the size each checkpoint was trained at (as Ultralytics predicts), or "
        "a multiple of 32 for every model.")]
    iou: Annotated[str, Env(
        "auto", "NMS IoU threshold: auto = the checkpoint's own predict setting, else Ultralytics' default (0.7), so "
        "overlapping objects survive as `YOLO(path).predict` keeps them; or a number from 0 to 1 for every model.")]
    max_det: Annotated[int, Env("300", "Most detections per image.")]
    batch_size: Annotated[int, Env(
        "0", "Images per inference call; 0 = auto (1 on CPU, where batching is slower; 8 on GPU).")]
    torch_threads: Annotated[int, Env(
        "0", "Inference threads per worker (torch, ONNX Runtime, OpenVINO); 0 = cores // WORKERS, at least 1.")]
    runtime: Annotated[str, Env(
        "auto", "auto (ONNX Runtime, else OpenVINO, else torch), torch, onnx or openvino; exports cached in "
        "MODEL_DIR.")]
    int8: Annotated[bool, Env(
        "false", "Serve an int8 copy of each trained version's ONNX export when its holdout scores stay within "
        "INT8_MAX_DROP (a base model: `yolo-ls int8 FOLDER`); docs/speed.md.")]
    int8_max_drop: Annotated[float, Env("0.01", "Most mAP50-95 (top-1) and F1 the int8 copy may lose against fp32.")]
    bulk_lanes: Annotated[int, Env(
        "0", "Engine copies a many-task /predict runs side by side, one thread each; 0 = the worker's cores, 1 = "
        "off.")]
    tile: Annotated[int, Env(
        "0", "Tile side in px: images larger than it are also predicted in overlapping tiles at the model's scale and "
        "the boxes merged, for small objects in large images (per control: model_tile); 0 = off.")]
    assist_model: Annotated[str, Env(
        "", "Segment-anything checkpoint under MODEL_ROOT answering smart clicks and boxes (mobile_sam.pt, sam2_t.pt, "
        "...; fetched like MODEL_PATH with ASSIST_SHA256); empty = the served YOLO checkpoint answers them.")]
    assist_sha256: Annotated[str, Env("", "sha256 a fetched ASSIST_MODEL must have (none is pinned for SAM files).")]
    prompt_model: Annotated[str, Env(
        "", "Open-vocabulary checkpoint under MODEL_ROOT (YOLOE: yoloe-11s-seg.pt) serving controls with a label no "
        "class of MODEL_PATH knows (or a model_prompt), prompted with the labels, until a trained version beats it; "
        "empty = off.")]
    assist_score_threshold: Annotated[float, Env(
        "0.1", "Lowest score of a YOLO detection a smart click or box may pick (lower than pre-labels: the annotator "
        "pointed at the object).")]
    fetch_workers: Annotated[int, Env("8", "Images of one /predict downloaded or decoded concurrently.")]
    http_timeout: Annotated[float, Env("15", "Seconds before an image download or Label Studio call gives up.")]
    media_allowed_hosts: Annotated[str, Env(
        "", "Private hosts image URLs may reach besides LABEL_STUDIO_URL: host, host:port or CIDR, comma-separated.")]
    cache_max_mb: Annotated[int, Env("2048", "Size bound of the downloaded-image cache in MODEL_DIR/cache.")]
    max_image_pixels: Annotated[int, Env("100000000", "Bigger images are refused as decompression bombs.")]
    decode_budget_mb: Annotated[int, Env(
        "1024", "Decoded image memory one worker holds at once, decoding included (a 100 Mpx image takes about 800 "
        "MB); requests beyond it wait their turn; an image needing more alone is refused. Two workers then fit 4 GB.")]
    max_video_mb: Annotated[int, Env(
        "500", "Bigger video files are refused (they are streamed to MODEL_DIR/cache, never held in memory).")]
    max_video_seconds: Annotated[float, Env("3600", "Longer videos are refused, by /predict and yolo-ls alike.")]
    video_predict_seconds: Annotated[float, Env(
        "75", "Tracking time /predict may spend on one video task (Label Studio waits 100 s for the whole answer); a "
        "longer one is stopped with an error naming `yolo-ls prelabel`, which has no such limit.")]
    video_frame_stride: Annotated[int, Env(
        "1", "Track every n-th frame of a video (per control: model_frame_stride); Label Studio interpolates "
        "between.")]
    video_tracker: Annotated[str, Env(
        "bytetrack", "bytetrack, botsort or a tracker yaml under MODEL_ROOT (per control: model_tracker).")]
    video_keyframe_iou: Annotated[float, Env(
        "0.9", "A tracked box becomes a keyframe only where Label Studio's interpolation would drift below this IoU.")]
    train_frame_stride: Annotated[int, Env(
        "10", "Training takes every n-th frame of an annotated video track (neighbouring frames are near copies).")]
    load_wait_seconds: Annotated[float, Env("30", "How long /predict waits for a loading model before answering 503.")]
    max_request_mb: Annotated[int, Env("64", "Request bodies above this are answered 413.")]
    port: Annotated[int, Env("9090", "Port the server listens on.")]
    workers: Annotated[int, Env("1", "gunicorn worker processes (each loads its own model).")]
    threads: Annotated[int, Env("8", "Threads per worker; inference is serialised per model, fetching is not.")]
    log_level: Annotated[str, Env("INFO", "DEBUG, INFO, WARNING or ERROR.")]
    train_every_n: Annotated[int, Env(
        "10", "Changed annotations (created/updated/deleted) that start a training run by themselves; 0 = only the "
        "button.")]
    train_epochs: Annotated[int, Env("30", "Most epochs per training run (small projects learn in tens of epochs).")]
    train_steps: Annotated[int, Env(
        "0", "Most optimizer steps per run (0: no limit): epochs shrink as a project grows (never under 1 nor over "
        "TRAIN_EPOCHS), so a run of 300 images takes about as long as one of 60 and new versions keep coming.")]
    train_imgsz: Annotated[int, Env("640", "Training and holdout image size; smaller trains faster on a CPU.")]
    train_batch: Annotated[int, Env("16", "Training batch size; -1 lets Ultralytics pick one for the GPU memory.")]
    train_patience: Annotated[int, Env(
        "30", "Epochs without holdout improvement before a run stops early (0: never); a small project's holdout "
        "plateaus for a while, and 10 stopped its runs half-trained.")]
    train_min_images: Annotated[int, Env(
        "10", "Labeled images a project needs before a run starts (else: not started).")]
    train_holdout: Annotated[float, Env(
        "0.2", "Fraction of tasks (chosen by a hash of their image bytes, stable; a picture in two tasks stays on "
        "one side) kept out of training to score models.")]
    train_threads: Annotated[int, Env(
        "0", "CPU threads a run may use; 0 = all cores but one, left to the web workers.")]
    train_min_holdout: Annotated[int, Env(
        "5", "Holdout floor: with fewer held-out images, more are held out (stable by image content); runs need this "
        "many plus training images.")]
    promote_min_gain: Annotated[float, Env(
        "0.02", "F1 of the pre-labels (holdout, both models cross-fitted) a candidate must gain over the served "
        "model, surely: the gain must reach it and the lower bound of its 90% bootstrap interval must be above 0; 0: "
        "ties promote.")]
    class_thresholds: Annotated[bool, Env(
        "true", "Per-class score thresholds chosen on each version's holdout (max F1), used where a control sets no "
        "model_score_threshold; false = MODEL_SCORE_THRESHOLD for every class.")]
    keep_versions: Annotated[int, Env(
        "3", "Promoted versions kept per project besides the served one; older checkpoints, exports and training "
        "images are deleted (their scores stay listed).")]
    train_timeout: Annotated[int, Env(
        "7200", "Seconds a whole run (fetching, training, scoring, export) may take before it is stopped and "
        "recorded as failed.")]
    redis_url: Annotated[str, Env(
        "", "When set, runs go to an RQ queue served by `rq worker` processes instead of a local one.")]
    train_queue: Annotated[str, Env("yolo-training", "RQ queue name the web side fills and `rq worker` listens on.")]
    train_max_queued: Annotated[int, Env(
        "8", "Training runs that may wait for the training slot (all projects; one per project); further triggers "
        "are answered refused.")]
    predict_budget_seconds: Annotated[float, Env(
        "40", "Time a many-task /predict (Retrieve predictions) spends predicting before it answers with what is done "
        "and hands the rest to a bulk job that stores them through Label Studio's API (Label Studio waits 100 s); "
        "0 = predict every task in the request.")]
    bulk_chunk: Annotated[int, Env(
        "64", "Tasks per chunk of a bulk job: the unit an RQ worker takes and a killed worker's retry repeats.")]
    bulk_lease_seconds: Annotated[float, Env(
        "120", "A chunk whose worker has not reported for this long is handed to another (a killed worker's chunk).")]
    bulk_queue: Annotated[str, Env(
        "yolo-bulk", "RQ queue of bulk chunks when REDIS_URL is set: `rq worker yolo-bulk` on any machine sharing "
        "MODEL_DIR pre-labels.")]
    webhook_secret: Annotated[str, Env(
        "", "When set, /webhook needs it in the X-Webhook-Secret header (or valid basic auth, which the Start "
        "training button sends).")]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every variable, failing at start with the variable's name when a value is malformed."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var in SETTINGS:
            raw = environ.get(var.env, var.default)
            try:
                values[_field_name(var)] = _parse(var, raw)
            except ValueError:
                raise ValueError(f"{var.env}={raw!r} is not a valid {var.kind.__name__} ({var.why})") from None
        values.update(overrides)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not 0.0 <= self.model_score_threshold <= 1.0:
            raise ValueError("MODEL_SCORE_THRESHOLD must be between 0 and 1")
        if self.task_score not in ("uncertainty", "mean"):
            raise ValueError(f"TASK_SCORE={self.task_score!r}: use uncertainty or mean")
        if bool(self.basic_auth_user) != bool(self.basic_auth_pass):
            raise ValueError("set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither")
        if self.imgsz != "auto" and not (str(self.imgsz).isdigit() and int(self.imgsz) >= 32
                                         and int(self.imgsz) % 32 == 0):
            raise ValueError(f"IMGSZ={self.imgsz!r}: use auto or a multiple of 32 (at least 32)")
        if self.iou != "auto" and not _unit_number(self.iou):
            raise ValueError(f"IOU={self.iou!r}: use auto (the checkpoint's own, as Ultralytics predicts) or a "
                             "number from 0 to 1")
        for var in SETTINGS:  # WEIGHTS_SHA256, ASSIST_SHA256: digests or empty
            digest = getattr(self, _field_name(var))
            if var.env.endswith("_SHA256") and digest and not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise ValueError(f"{var.env}={digest!r}: use the 64 hex digits `sha256sum FILE` prints")
        if self.decode_budget_mb < 16:
            raise ValueError("DECODE_BUDGET_MB must be at least 16 (a 2 Mpx photo takes about 16 MB to decode)")
        if self.runtime not in ("auto", "torch", "onnx", "openvino"):
            raise ValueError(f"RUNTIME={self.runtime!r}: use auto, torch, onnx or openvino")
        if not 0.0 <= self.int8_max_drop <= 1.0:
            raise ValueError("INT8_MAX_DROP must be between 0 and 1 (0.01 is one point of mAP50-95 and of F1)")
        if not 0.0 <= self.assist_score_threshold <= 1.0:
            raise ValueError("ASSIST_SCORE_THRESHOLD must be between 0 and 1")
        if self.tile and self.tile < 32:
            raise ValueError("TILE must be 0 (off) or a tile side of at least 32 px, e.g. 640")
        if self.predict_budget_seconds < 0 or self.bulk_chunk < 1 or self.bulk_lease_seconds <= 0:
            raise ValueError("PREDICT_BUDGET_SECONDS must be >= 0, BULK_CHUNK >= 1 and BULK_LEASE_SECONDS > 0")
        if self.bulk_lanes < 0:
            raise ValueError("BULK_LANES must be 0 (the worker's cores), 1 (off) or more")
        if self.train_imgsz < 32 or self.train_imgsz % 32:
            raise ValueError("TRAIN_IMGSZ must be a multiple of 32 (at least 32)")
        if not 0.0 < self.train_holdout < 1.0:
            raise ValueError("TRAIN_HOLDOUT must be between 0 and 1 (e.g. 0.2)")
        if self.train_every_n < 0 or self.train_min_images < 2:
            raise ValueError("TRAIN_EVERY_N must be >= 0 and TRAIN_MIN_IMAGES >= 2")
        if self.train_steps < 0:
            raise ValueError("TRAIN_STEPS must be >= 0 (0: no limit; else the most optimizer steps per run)")
        if self.train_min_holdout < 1 or self.keep_versions < 0 or not 0 <= self.promote_min_gain < 1:
            raise ValueError("TRAIN_MIN_HOLDOUT must be >= 1, KEEP_VERSIONS >= 0, PROMOTE_MIN_GAIN in [0, 1)")

    def __repr__(self) -> str:
        """Every field, secrets masked: printed or logged settings never show a key, password or URL password.

        Masked: fields named with key, pass, secret or token, and the user:password part of URLs
        (``redis://:pw@host``). ``dataclasses.asdict`` still gives the real values.
        """
        import re

        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value and any(word in f.name for word in ("key", "pass", "secret", "token")):
                value = "***"
            elif isinstance(value, str) and "@" in value:
                value = re.sub(r"://.*@", "://***@", value)  # greedy: a password holding "@" is masked whole
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def fixed_imgsz(self) -> int | None:
        """IMGSZ as a number, or None for ``auto`` (each checkpoint at the size it was trained at)."""
        return None if self.imgsz == "auto" else int(self.imgsz)

    @property
    def fixed_iou(self) -> float | None:
        """IOU as a number, or None for ``auto`` (each checkpoint's own NMS IoU, as Ultralytics predicts)."""
        return None if self.iou == "auto" else float(self.iou)

    @property
    def model_root_path(self) -> Path:
        return Path(self.model_root).resolve()

    @property
    def model_dir_path(self) -> Path:
        return Path(self.model_dir).resolve()

    @property
    def cache_dir(self) -> Path:
        return self.model_dir_path / "cache"

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        return (self.basic_auth_user, self.basic_auth_pass) if self.basic_auth_user else None


def _table() -> tuple[Var, ...]:
    """``SETTINGS`` from the fields of ``Settings``: each ``Annotated[type, Env(...)]`` as one row, in field order."""
    hints = get_type_hints(Settings, include_extras=True)
    rows = []
    for f in dataclasses.fields(Settings):
        kind, env = hints[f.name].__origin__, hints[f.name].__metadata__[0]
        rows.append(Var(f.name.upper(), env.default, kind, env.why))
    return tuple(rows)


SETTINGS: tuple[Var, ...] = _table()


def markdown_table() -> str:
    """The README's configuration table."""
    rows = ["| Variable | Default | What it is for |", "|---|---|---|"]
    for var in SETTINGS:
        default = f"`{var.default}`" if var.default else "(empty)"
        rows.append(f"| `{var.env}` | {default} | {var.why} |")
    return "\n".join(rows)


def update_readme(path: Path) -> None:
    """Rewrite the table between the README's settings markers."""
    text = path.read_text()
    start, end = "<!-- settings:start -->", "<!-- settings:end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{start}\n{markdown_table()}\n{end}{tail}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write-readme"]:
        update_readme(Path(__file__).resolve().parent.parent / "README.md")
    else:
        print(markdown_table())
