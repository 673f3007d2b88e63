"""What a training worker executes for one project: runs, back to back while follow-ups are asked for.

Both runners call ``run_job``: the local runner in a child process
(``python -m yolo_backend.training.job``, settings on stdin), the RQ runner through
``rq worker``. The process holds the project's ``run.lock`` for its whole life, which
is how every other process knows a run is alive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys

from ..config import Settings
from ..logs import configure
from .coalesce import Coalescer
from .collect import LABEL_STUDIO
from .durable import locked
from .state import RunRecord, RunState
from .status import StatusBook
from .train import run_once

log = logging.getLogger("yolo_backend.training")

NICENESS = 10  # the web workers' /predict comes first when both want the CPU


def run_job(project: str, run_id: str | None = None, source: str = LABEL_STUDIO,
            settings: Settings | None = None, one_at_a_time: bool = False) -> str:
    """Run ``project``'s queued run, then one follow-up if triggers came during it; returns the last state.

    ``one_at_a_time`` (local runner) also takes ``MODEL_DIR/training-slot.lock``, so several web
    workers never train two projects at once on one machine; with RQ, the number of workers decides.
    """
    settings = settings or Settings.from_env()
    if not logging.getLogger().handlers:  # under `rq worker`: make the progress lines visible
        configure(settings.log_level)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    coalescer = Coalescer(settings.model_dir_path, project)
    book = StatusBook(settings.model_dir_path, project)
    slot = locked(settings.model_dir_path / "training-slot.lock") if one_at_a_time else contextlib.nullcontext()
    last = "idle"
    with locked(coalescer.run_lock), slot:
        while True:
            coalescer.begin()
            current = book.current()
            run = current if current and current.run_id == run_id and current.state == RunState.QUEUED \
                else RunRecord(project)
            last = run_once(settings, project, run, source).state.value
            if not coalescer.end():
                return last
            log.info("project %s: triggers arrived during the run; starting the follow-up run", project)
            run_id = None


def main() -> None:
    """``python -m yolo_backend.training.job PROJECT RUN_ID SOURCE`` with the settings as JSON on stdin."""
    project, run_id, source = sys.argv[1:4]
    settings = Settings(**json.loads(sys.stdin.read()))
    configure(settings.log_level)
    run_job(project, run_id, source, settings, one_at_a_time=True)


if __name__ == "__main__":
    main()
