"""A real training run whose TRAIN_TIMEOUT deadline lands inside ``Registry.publish``, at a point the test picks.

``python -m tests.support.deadline_in_publish PROJECT SOURCE MODE``, the settings as JSON on
stdin (as the local runner starts ``yolo_backend.training.job``). The run is ``run_job``'s,
unchanged; only the moment of its deadline is chosen, not left to a timer race: the run's
own ``Watchdog`` is told to expire (``Watchdog.expire``, what its thread does when
TRAIN_TIMEOUT passes; the settings' TRAIN_TIMEOUT is far away) from inside publish:

* ``before``: publish has been called and is about to take the registry lock. The
  deadline's thread takes it first, records the run failed and ends the process while
  holding it: the version is never published.
* ``during``: publish holds the lock and has copied the weights; the registry is not yet
  switched. The deadline's thread waits for the lock (this script waits until it does),
  publish completes, and the deadline finds the version published. The recipe's thread
  then stops where publish returns, so the deadline alone records how the run ended (as
  when the deadline lands while the recipe is stuck right after).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from yolo_backend.config import Settings
from yolo_backend.core import registry
from yolo_backend.training import job

watchdogs: list[job.Watchdog] = []
armed = threading.Event()  # set while the recipe is inside publish


def deadline_now(wait: Callable[[threading.Thread], None]) -> None:
    """The deadline of the run's watchdog passes now, in a thread of its own; ``wait`` for it as the mode needs."""
    thread = threading.Thread(target=watchdogs[-1].expire, daemon=True, name="deadline")
    thread.start()
    wait(thread)


def waiting_for_the_registry_lock(thread: threading.Thread) -> None:
    """Until ``thread`` is inside ``durable.locked`` (it blocks there, as publish holds the lock)."""
    while True:
        frame = sys._current_frames().get(thread.ident or 0)
        while frame is not None:
            if frame.f_code.co_name == "locked" and frame.f_globals.get("__name__", "").endswith(".durable"):
                return
            frame = frame.f_back
        time.sleep(0.01)


def install(mode: str) -> None:
    enter, publish, locked, write_json = job.Watchdog.__enter__, registry.Registry.publish, registry.locked, \
        registry.write_json

    def remember(self: job.Watchdog) -> job.Watchdog:
        watchdogs.append(self)
        return enter(self)

    def publishing(self: registry.Registry, *args: Any, **kwargs: Any) -> str:
        armed.set()
        version = publish(self, *args, **kwargs)
        threading.Event().wait()  # "during": the recipe stops here; the deadline's thread ends the process
        return version

    def lock_then(*args: Any, **kwargs: Any) -> Any:  # publish's ``with locked(...)``
        if mode == "before" and armed.is_set():
            deadline_now(threading.Thread.join)  # it records, and ends the process holding the lock
        return locked(*args, **kwargs)

    def switch(*args: Any, **kwargs: Any) -> None:  # publish's step 2, inside the lock
        if mode == "during" and armed.is_set():
            armed.clear()
            deadline_now(waiting_for_the_registry_lock)
        write_json(*args, **kwargs)

    job.Watchdog.__enter__ = remember  # type: ignore[method-assign]
    registry.Registry.publish = publishing  # type: ignore[method-assign]
    registry.locked, registry.write_json = lock_then, switch


def main() -> None:
    project, source, mode = sys.argv[1:4]
    settings = Settings(**json.loads(sys.stdin.read()))
    assert mode in ("before", "during") and settings.train_timeout > 600, "the deadline is the script's, not a timer's"
    install(mode)
    last = job.run_job(project, None, source, settings)
    sys.exit(f"the run ended {last} without reaching publish: no deadline was placed")


if __name__ == "__main__":
    main()
