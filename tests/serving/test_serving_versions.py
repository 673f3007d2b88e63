"""What serves after a promotion: a fast /setup, one version string, every control, thresholds, fallbacks.

Through the Flask app with stand-in detectors (known, exact detections), the real model
store and the real registry files, so these check the serving rules, not a model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from model import YOLOBackend
from tests.support.live_app import RecordingRunner
from tests.support.standin import ColorBlobDetector
from tests.training.test_training_runs import wait_for
from yolo_backend.config import Settings
from yolo_backend.core.registry import Registry
from yolo_backend.serving.model_store import ModelStore
from yolo_backend.training import ProjectTrainer
from yolo_backend.web.http_api import create_app

PROJECT = "4"
TWO_CONTROLS = ('<View><Image name="image" value="$image"/>'
                '<RectangleLabels name="label" toName="image"><Label value="Car"/></RectangleLabels>'
                '<PolygonLabels name="outline" toName="image"><Label value="Car"/></PolygonLabels></View>')
ONE_CONTROL = ('<View><Image name="image" value="$image"/>'
               '<RectangleLabels name="label" toName="image"{attrs}><Label value="Car"/></RectangleLabels></View>')


class Blind(ColorBlobDetector):
    """A trained version that knows the labels and finds nothing."""

    def detect(self, images: list, conf: float = 0.25, bulk: bool = False) -> list:
        return [[] for _ in images]


class Service:
    """The app around a real ModelStore whose loader gives stand-ins per checkpoint file."""

    def __init__(self, tmp_path: Path, gated: bool = False, broken: tuple[str, ...] = (), **overrides: Any) -> None:
        docs = tmp_path / "docs"
        docs.mkdir(exist_ok=True)
        img = Image.new("RGB", (200, 100), "white")
        ImageDraw.Draw(img).rectangle((20, 10, 59, 49), fill=(255, 0, 0))
        img.save(docs / "a.png")
        self.settings = Settings.from_env({}, model_root=str(tmp_path / "models"), model_dir=str(tmp_path / "state"),
                                          local_files_document_root=str(docs), **overrides)
        (tmp_path / "models").mkdir(exist_ok=True)
        (tmp_path / "models" / "yolov5nu.pt").write_bytes(b"base")
        (tmp_path / "models" / "other.pt").write_bytes(b"other")
        self.loads: list[str] = []
        self.gate = threading.Event()  # gated: a trained version's load waits here until the test opens it
        if not gated:
            self.gate.set()

        def loader(path: Path, **_options: object) -> ColorBlobDetector:
            self.loads.append(path.name)
            if path.name in broken:
                raise RuntimeError(f"{path.name} is truncated")
            if path.parent.name == "versions":
                self.gate.wait(600)  # give-up limit only: close() opens it
                return Blind() if path.read_bytes() == b"blind" else ColorBlobDetector()
            return ColorBlobDetector()

        self.store = ModelStore(self.settings, loader=loader)  # type: ignore[arg-type]
        trainer = ProjectTrainer(self.settings, runner=RecordingRunner())  # type: ignore[arg-type]
        self.store.use_project_models(trainer.lookup)
        self.backend = YOLOBackend(self.settings, store=self.store, trainer=trainer)
        self.store.start(background=False)
        self.client = create_app(self.backend).test_client()
        self.registry = Registry(self.settings.model_dir_path, PROJECT)
        self.tmp = tmp_path

    def promote(self, content: bytes = b"trained", control: str | None = "label", **thresholds: float) -> str:
        weights = self.tmp / "candidate.pt"
        weights.write_bytes(content)
        details: dict[str, Any] = {"thresholds": thresholds}
        if control:
            details["control"] = control
        return self.registry.publish(weights, ["Car"], {}, "run", **details)

    def setup(self, config: str) -> str:
        answer = self.client.post("/setup", json={"project": f"{PROJECT}.1700000000", "schema": config})
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["model_version"]

    def predict(self, config: str) -> dict:
        tasks = [{"id": 1, "data": {"image": "/data/local-files/?d=a.png"}}]
        answer = self.client.post("/predict", json={"tasks": tasks, "project": f"{PROJECT}.1700000000",
                                                    "label_config": config})
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["results"][0]

    def loading(self, name: str) -> bool:
        """Whether a load of checkpoint ``name`` has started and waits at the closed gate."""
        return name in self.loads and not self.gate.is_set()

    def close(self) -> None:
        self.gate.set()
        self.backend.close()


def answered_while(svc: Service, blocked: str, call: Callable[[], Any]) -> Any:
    """``call()`` in a thread while the load of ``blocked`` is held at the gate; its answer once it returned.

    Fails if ``call`` is still waiting after a minute (a give-up limit, reached only if it waits for the load).
    """
    answer: list[Any] = []

    def calling() -> None:
        try:
            answer.append(call())
        except BaseException as exc:  # raised here, in the test's thread
            answer.append(exc)

    worker = threading.Thread(target=calling, daemon=True)
    worker.start()
    worker.join(60)
    wait_for(lambda: svc.loading(blocked), f"a load of {blocked} held at the gate", timeout=60)
    assert answer, f"no answer while the load of {blocked} was blocked: it waited for the load"
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]


@pytest.fixture
def service(tmp_path: Path):
    made: list[Service] = []

    def make(**options: Any) -> Service:
        made.append(Service(tmp_path, **options))
        return made[-1]

    yield make
    for one in made:
        one.close()


def test_setup_never_loads_a_promoted_version(service) -> None:
    """Fault 3: the first /setup after a promotion loaded (and exported) the model while Label Studio waited 3 s."""
    svc = service(gated=True)
    config = ONE_CONTROL.format(attrs="")
    assert svc.setup(config).startswith("yolov5nu-")
    version = svc.promote()
    assert answered_while(svc, "p4-v1.pt", lambda: svc.setup(config)) == version  # prefetches it, in the background
    versions = answered_while(svc, "p4-v1.pt", lambda: [svc.setup(config) for _ in range(50)])
    assert versions == [version] * 50  # answered while the load is blocked: /setup never waits for it
    assert svc.loads.count("p4-v1.pt") == 1  # and starts no second load of it
    svc.gate.set()
    assert svc.predict(config)["model_version"] == version  # served by the model the prefetch loaded
    assert svc.loads.count("p4-v1.pt") == 1


def test_one_version_string_in_setup_predict_and_versions(service) -> None:
    """Fault 4: /setup answered the first control's version, /predict joined all of them."""
    svc = service()
    svc.promote()
    config = TWO_CONTROLS.replace('name="outline"', 'name="outline" model_path="other.pt"')
    setup = svc.setup(config)
    assert setup == svc.predict(config)["model_version"]
    assert "p4-v1" in setup and "+other-" in f"+{setup}"
    listed = svc.client.get(f"/versions?project={PROJECT}").get_json()
    assert listed["model_version"] == setup and listed["served"] == "p4-v1"
    assert "p4-v1" in svc.client.get("/versions").get_json()["versions"]


def test_other_controls_keep_the_base_model_after_a_promotion(service) -> None:
    """Fault 6: the project's model (trained on the first control) served every control; the others went blank."""
    svc = service()
    svc.promote(content=b"blind", control="label")
    prediction = svc.predict(TWO_CONTROLS)
    by_control = {r["from_name"] for r in prediction["result"]}
    assert by_control == {"outline"}, prediction  # the trained one finds nothing here; the base still does
    assert prediction["model_version"] == svc.setup(TWO_CONTROLS)
    assert "p4-v1" in prediction["model_version"] and "yolov5nu-" in prediction["model_version"]


def test_per_class_thresholds_apply_unless_switched_off_or_set_on_the_control(service, tmp_path: Path) -> None:
    svc = service()
    svc.promote(Car=0.95)  # the stand-in scores 0.9: below this version's own threshold for Car
    assert svc.predict(ONE_CONTROL.format(attrs=""))["result"] == []
    assert len(svc.predict(ONE_CONTROL.format(attrs=' model_score_threshold="0.5"'))["result"]) == 1
    details = svc.client.get(f"/versions?project={PROJECT}").get_json()["details"]
    assert details[0]["thresholds"] == {"Car": 0.95}
    off = Service(tmp_path, class_thresholds=False)
    try:
        assert len(off.predict(ONE_CONTROL.format(attrs=""))["result"]) == 1
    finally:
        off.close()


def test_a_promoted_version_that_fails_to_load_falls_back_and_health_says_why(service) -> None:
    svc = service(broken=("p4-v2.pt",))
    svc.promote()
    svc.promote()
    config = ONE_CONTROL.format(attrs="")
    assert svc.setup(config) == "p4-v2"  # not known to be broken yet: nothing was loaded
    prediction = svc.predict(config)
    assert prediction["model_version"] == "p4-v1" and len(prediction["result"]) == 1
    assert svc.setup(config) == "p4-v1"
    health = svc.client.get("/health").get_json()
    assert any("p4-v2 failed to load" in p and "p4-v1" in p for p in health["problems"]), health


def test_setup_stays_fast_while_other_threads_predict(service) -> None:
    """/setup takes no lock a prediction holds."""
    svc = service(gated=True)
    version = svc.promote()
    config = ONE_CONTROL.format(attrs="")
    worker = threading.Thread(target=svc.predict, args=(config,))
    worker.start()  # the prediction loads the version, and holds whatever it holds while the load is blocked
    wait_for(lambda: svc.loading("p4-v1.pt"), "the prediction to start loading p4-v1.pt", timeout=60)
    assert answered_while(svc, "p4-v1.pt", lambda: svc.setup(config)) == version
    svc.gate.set()
    worker.join(60)
    assert not worker.is_alive(), "the prediction did not finish once the load could"


def test_a_label_class_mismatch_is_logged_once_not_on_every_setup(service, caplog) -> None:
    """Label Studio calls /setup often: the hint is logged once per project, control and model."""
    svc = service()
    config = ONE_CONTROL.format(attrs="").replace('value="Car"', 'value="Truck"')
    with caplog.at_level("WARNING", logger="yolo_backend.model"):
        for _ in range(5):
            svc.setup(config)
    hints = [r for r in caplog.records if "matches a class of the model" in r.getMessage()]
    assert len(hints) == 1, [r.getMessage() for r in hints]
    svc.promote(content=b"trained", control="label")  # another model serves now: worth saying again
    with caplog.at_level("WARNING", logger="yolo_backend.model"):
        svc.predict(config)  # loads the promoted version
        svc.setup(config)
        svc.setup(config)
    hints = [r for r in caplog.records if "matches a class of the model" in r.getMessage()]
    assert len(hints) == 2
