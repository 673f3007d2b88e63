"""Text prompts for labels no class knows: a YOLOE checkpoint built from Ultralytics' config (random weights),
prompted with the labels, served, cached per label set, and judged by the promotion gate like any served model.

MobileCLIP, YOLOE's text encoder, cannot be fetched here: ``words`` stands in for it (a fixed
vector per text), the one part not real. Everything after the embeddings is Ultralytics' own.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from yolo_backend.config import Settings
from yolo_backend.formats import label_config
from yolo_backend.serving.prompts import PromptModels, prompts_for

pytestmark = pytest.mark.slow  # the tiny segment model trains on a machine's first run

NAMES = {0: "red", 1: "blue"}  # the base's classes (the tiny segment model)


def config(*labels: str, prompt: str | None = None, model_path: str = "") -> str:
    first = f' model_prompt="{prompt}"' if prompt else ""
    items = "".join(f'<Label value="{label}"{first if i == 0 else ""}/>' for i, label in enumerate(labels))
    path = f' model_path="{model_path}"' if model_path else ""
    return f'<View><Image name="image" value="$image"/><BrushLabels name="mask" toName="image"{path}>{items}' \
           '</BrushLabels></View>'


class Words:
    """A text encoder stand-in: the same unit vector for the same text, and a count of what it encoded."""

    def __init__(self) -> None:
        self.encoded: list[tuple[str, ...]] = []

    def __call__(self, model, prompts):  # type: ignore[no-untyped-def]
        import torch

        self.encoded.append(tuple(prompts))
        dim = model.model.model[-1].embed
        rows = [torch.randn(dim, generator=torch.Generator().manual_seed(int(hashlib.sha256(p.encode()).hexdigest()[:8],
                                                                                    16))) for p in prompts]
        embeddings = torch.stack(rows)[None]
        return embeddings / embeddings.norm(dim=-1, keepdim=True)


def spec_of(xml: str):  # type: ignore[no-untyped-def]
    return label_config.parse(xml)[0]


def test_which_controls_the_prompt_model_serves() -> None:
    assert prompts_for(spec_of(config("red", "blue")), NAMES) is None  # the base knows every label
    assert prompts_for(spec_of(config("receipt", "red")), NAMES) == ("receipt", "red")  # one unknown: all prompted
    assert prompts_for(spec_of(config("red", prompt="a red disc")), NAMES) == ("a red disc",)  # a prompt asked for
    assert prompts_for(spec_of(config("Receipt", prompt="paper receipt")), {}) == ("paper receipt",)
    click = label_config.parse('<View><Image name="image" value="$image"/><KeyPointLabels name="k" toName="image" '
                               'smart="true"><Label value="receipt"/></KeyPointLabels></View>')[0]
    assert prompts_for(click, NAMES) is None  # a smart click tool asks for objects; it is never pre-labelled


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    from ultralytics import YOLOE

    from tests.support.tiny_segment import tiny_segment_model, write

    root = tmp_path_factory.mktemp("prompt-root")
    shutil.copyfile(tiny_segment_model(), root / "seg.pt")
    YOLOE("yoloe-11s-seg.yaml").save(str(root / "yoloe-11s-seg.pt"))  # Ultralytics' config, random weights
    docs = tmp_path_factory.mktemp("prompt-docs")
    samples = [write(docs, 63_000 + i) for i in range(3)]
    return root, docs, samples


def settings_for(world, state: Path, **overrides) -> Settings:  # type: ignore[no-untyped-def]
    root, docs, _ = world
    values = dict(model_root=str(root), model_path="seg.pt", model_dir=str(state), local_files_document_root=str(docs),
                  prompt_model="yoloe-11s-seg.pt")
    return Settings.from_env({}, **{**values, **overrides})


def app_for(settings: Settings, words: Words | None):  # type: ignore[no-untyped-def]
    from model import YOLOBackend
    from yolo_backend.core.registry import RegistryReader
    from yolo_backend.web.http_api import create_app

    models = PromptModels(settings, words) if words is not None else None
    backend = YOLOBackend(settings, prompt_models=models)
    backend.store.use_project_models(RegistryReader(settings.model_dir_path))
    backend.store.start(background=False)
    return create_app(backend).test_client(), backend


def predict(client, sample, xml: str) -> dict:  # type: ignore[no-untyped-def]
    task = {"id": 1, "data": {"image": f"/data/local-files/?d={sample.path.name}"}}
    answer = client.post("/predict", json={"tasks": [task], "label_config": xml, "project": "8.1"})
    assert answer.status_code == 200, answer.json
    return answer.json["results"][0]


def test_unknown_labels_are_served_by_the_prompted_checkpoint_made_once_per_label_set(world, tmp_path: Path) -> None:
    from ultralytics import YOLO

    _, _, samples = world
    words = Words()
    settings = settings_for(world, tmp_path / "state")
    client, _ = app_for(settings, words)
    xml = config("receipt", "coin", prompt="paper receipt")
    version = client.post("/setup", json={"project": "8.1", "schema": xml}).json["model_version"]
    assert version.startswith("yoloe-11s-seg-prompt-")
    for sample in samples:
        assert predict(client, sample, xml)["model_version"] == version  # what /setup said: Label Studio compares
    assert words.encoded == [("paper receipt", "coin")]  # the label set's embeddings, computed once
    [made] = (tmp_path / "state" / "prompted").glob("prompted-*.pt")
    assert YOLO(str(made)).names == {0: "receipt", 1: "coin"}  # an ordinary checkpoint whose classes are the labels
    # a label set the base knows is served by the base, as before
    assert not predict(client, samples[0], config("red", "blue"))["model_version"].startswith("yoloe")

    again = Words()  # another worker, or a restart: the checkpoint on disk is the cache
    client2, _ = app_for(settings, again)
    assert predict(client2, samples[0], xml)["model_version"] == version and again.encoded == []


def test_without_its_text_encoder_the_base_serves_and_health_says_what_to_fetch(world, tmp_path: Path) -> None:
    _, _, samples = world
    client, _ = app_for(settings_for(world, tmp_path / "state"), None)  # Ultralytics' own encoder: offline here
    answer = predict(client, samples[0], config("receipt"))
    assert answer["result"] == [] and answer["model_version"].startswith("seg-")
    problems = client.get("/health").json["problems"]
    assert any("text encoder" in p and "mobileclip_blt.ts" in p for p in problems), problems


def test_the_gate_judges_the_prompted_model_as_the_served_one_and_a_trained_version_replaces_it(world,
                                                                                                tmp_path: Path) -> None:
    from tests.support.tiny_segment import segment_row
    from yolo_backend import kinds
    from yolo_backend.core.registry import Registry
    from yolo_backend.training import train
    from yolo_backend.training.examples import Example
    from yolo_backend.training.holdout import predict_holdout

    root, _, samples = world
    words = Words()
    settings = settings_for(world, tmp_path / "state")
    xml = config("receipt", "coin")
    client, _ = app_for(settings, words)
    served_version = predict(client, samples[0], xml)["model_version"]

    spec = spec_of(xml)
    registry = Registry(settings.model_dir_path, "8")
    served = train._served_now(settings, registry, spec)
    assert (served.version, served.trained, served.base) == (served_version, False, root / "seg.pt")
    assert served.path.parent.name == "prompted"
    # a first run starts from the base checkpoint, never from the prompted model it is judged against
    assert train._base_start(settings, None, "segment", served) == (str(root / "seg.pt"), None)
    kind = kinds.for_result(spec.kind, "segment")
    holdout = [Example(i, s.path, tuple(segment_row(0, o, s.width, s.height) for _, o in s.objects))
               for i, s in enumerate(samples)]
    baseline = train.judge(predict_holdout(served.path, holdout, spec, settings, kind), 2, settings, None, kind.METRIC)
    assert baseline.images == len(samples)  # scored on the holdout, as a candidate is

    registry.publish(root / "seg.pt", ["receipt", "coin"], {}, "r1", control="mask")  # a promoted version
    assert train._served_now(settings, registry, spec).version == "p8-v1"
    assert predict(client, samples[0], xml)["model_version"] == "p8-v1"  # it serves now, not the prompt model
