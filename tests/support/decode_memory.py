"""Peak memory of one /predict of big flat PNGs, measured in a fresh process (its own RSS, nothing else's).

``python -m tests.support.decode_memory SIDE COUNT [BUDGET_MB]`` prints one JSON line: the RSS
before the request, the peak during it (VmHWM, reset first through /proc/self/clear_refs), and
what the request answered. The PNGs are one flat colour, so a few hundred kB decode to SIDE x SIDE.
Used by tests/media/test_decode_budget.py and scripts/bench_decode_memory.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CONFIG = """<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">
<Label value="square"/></RectangleLabels></View>"""


def _status_kb(field: str) -> int:
    return int(Path("/proc/self/status").read_text().split(f"{field}:")[1].split()[0])


def flat_png(path: Path, side: int) -> Path:
    from PIL import Image

    if not path.is_file():
        Image.new("RGB", (side, side), (120, 130, 140)).save(path)
    return path


def measure(side: int, count: int, budget_mb: int | None, folder: Path) -> dict[str, Any]:
    """Build a backend with no model (images are still fetched and decoded), then post one request.

    glibc's arenas are capped at two first, as gunicorn.conf.py does in every worker.
    """
    import ctypes

    from PIL import Image

    ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX

    from yolo_backend.app import build_backend
    from yolo_backend.config import Settings
    from yolo_backend.web.http_api import create_app

    flat_png(folder / f"flat{side}.png", side)
    Image.new("RGB", (64, 48), "white").save(folder / "small.png")
    env = {"WEIGHTS_DOWNLOAD": "false", "MAX_IMAGE_PIXELS": str(max(side * side, 100_000_000))}
    if budget_mb is not None:
        env["DECODE_BUDGET_MB"] = str(budget_mb)
    settings = Settings.from_env(env, model_root=str(folder / "models"), model_dir=str(folder / "state"),
                                 local_files_document_root=str(folder), device="cpu", runtime="torch")
    backend = build_backend(settings, start=False)
    backend.store.start(background=False)
    client = create_app(backend).test_client()

    def post(names: list[str]) -> Any:
        tasks = [{"id": i, "data": {"image": f"/data/local-files/?d={name}"}} for i, name in enumerate(names)]
        return client.post("/predict", json={"tasks": tasks, "label_config": CONFIG})

    post(["small.png"])  # warm: imports and first-request set-up are not the request's cost
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now
    answer = post([f"flat{side}.png"] * count)
    budget = getattr(backend.media, "budget", None)  # None on a tree from before DECODE_BUDGET_MB
    return {"side": side, "count": count, "budget_mb": getattr(settings, "decode_budget_mb", None),
            "rss_before_mb": before // 1024, "peak_mb": _status_kb("VmHWM") // 1024, "status": answer.status_code,
            "results": len(answer.get_json().get("results", [])), "budget_held_after": budget and budget.held}


def run(side: int, count: int, budget_mb: int | None = None, tree: Path | None = None) -> dict[str, Any]:
    """``measure`` in a child process, so the parent's memory and earlier peaks do not count.

    ``tree``: another checkout of the project to measure (this file is copied into it).
    """
    here = Path(__file__).resolve().parents[2]
    if tree is not None:
        shutil.copy(__file__, tree / "tests" / "support" / "decode_memory.py")
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "tests.support.decode_memory", str(side), str(count), tmp]
        if budget_mb is not None:
            args.append(str(budget_mb))
        done = subprocess.run(args, capture_output=True, text=True, cwd=tree or here, check=False)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    side, count, folder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    budget = int(sys.argv[4]) if len(sys.argv) > 4 else None
    print(json.dumps(measure(side, count, budget, folder)))
