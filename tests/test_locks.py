"""The locks are what installs: they agree with the ranges, with each other, with the images, and the venv."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.version import Version

from tests.support import label_studio_install as ls_install
from tests.support.locks import hashed, name_of, pins, ranges

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {  # lock -> the ranges it is compiled from
    "locks/requirements.txt": "requirements.txt",
    "locks/requirements-test.txt": "requirements-test.txt",
    "locks/label-studio.txt": "requirements-label-studio.txt",
}
@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_locked_package_satisfies_its_range_and_every_range_is_locked(lock: str) -> None:
    locked = pins(ROOT / lock)
    assert locked and hashed(ROOT / lock), f"{lock}: pins with hashes (make lock)"
    for requirement in ranges(ROOT / LOCKS[lock]):
        name = name_of(requirement.name)
        assert name in locked, f"{requirement} is in {LOCKS[lock]} but not in {lock}: run make lock"
        outside = [str(v) for v, _ in locked[name] if not requirement.specifier.contains(v, prereleases=True)]
        assert not outside, f"{lock} pins {name} {outside}, outside {LOCKS[lock]}'s {requirement.specifier}"


def test_the_test_lock_installs_the_service_lock_versions() -> None:
    service, test = pins(ROOT / "locks/requirements.txt"), pins(ROOT / "locks/requirements-test.txt")
    def versions(locked: list[tuple[Version, str]] | None) -> set[Version]:  # markers differ with who needs it
        return {version for version, _ in locked or []}

    differ = {name: (versions(pinned), versions(test.get(name))) for name, pinned in service.items()
              if versions(test.get(name)) != versions(pinned)}
    assert not differ, f"the tests would run other versions than users install: {differ}"


def test_torch_is_chosen_per_hardware_outside_the_locks() -> None:
    torch_pins = {name_of(r.name): str(r.specifier) for r in ranges(ROOT / "locks/torch.txt")}
    assert set(torch_pins) == {"torch", "torchvision"}
    for lock in LOCKS:
        assert not set(pins(ROOT / lock)) & {"torch", "torchvision", "triton"}, f"{lock} would pull a torch build"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name, arg in (("torch", "TORCH_VERSION"), ("torchvision", "TORCHVISION_VERSION")):
        assert f"ARG {arg}={torch_pins[name].lstrip('=')}" in dockerfile, f"the image's {name} is not locks/torch.txt's"


def test_the_image_the_makefile_and_compose_install_exactly_the_locks() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r locks/requirements.txt" in dockerfile
    assert not re.search(r"pip install[^\n]*-r requirements\.txt", dockerfile), "the image installs from ranges"
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -r locks/requirements.txt" in makefile
    assert "pip install --quiet -r locks/requirements-test.txt" in makefile
    assert not re.search(r"-r requirements(-test)?\.txt", makefile), "make installs from ranges"
    image = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["label-studio"]["image"]
    assert image == f"heartexlabs/label-studio:{ls_install.locked_version()}", "compose runs another Label Studio"


def test_this_environment_is_the_test_lock() -> None:
    """What the tests run on is what the lock says (the Makefile installed it, hash-checked)."""
    wrong = {}
    for name, versions in pins(ROOT / "locks/requirements-test.txt").items():
        wanted = [v for v, marker in versions if not marker or Marker(marker).evaluate()]
        if not wanted:  # another platform's or Python's
            continue
        try:
            have = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            wrong[name] = (wanted, None)
            continue
        if have not in wanted:
            wrong[name] = (wanted, have)
    assert not wrong, f"installed versions differ from locks/requirements-test.txt (make test installs it): {wrong}"


def test_the_label_studio_venv_path_changes_when_its_lock_changes(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LS_VENV", raising=False)
    monkeypatch.setenv("TEST_CACHE", str(tmp_path / "cache"))
    lock = tmp_path / "label-studio.txt"
    lock.write_text("label-studio==1.23.2 --hash=sha256:00\nsentry-sdk==2.76.0 --hash=sha256:11\n")
    before = ls_install.venv_path(lock)
    lock.write_text("label-studio==1.23.2 --hash=sha256:00\nsentry-sdk==3.0.0 --hash=sha256:22\n")
    after = ls_install.venv_path(lock)
    assert before != after and before.parent.parent == after.parent.parent == tmp_path / "cache"
    assert ls_install.lock_digest(ROOT / "locks/label-studio.txt") in str(ls_install.venv_path())


SIX = {  # a tiny locked package, two versions, to install for real
    "1.16.0": ("1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926",
               "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"),
    "1.17.0": ("4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
               "ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"),
}


def test_a_venv_installed_from_another_lock_is_rebuilt_not_reused(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``LS_VENV`` pointing at a venv of an older lock: the next use reinstalls it from the new lock."""
    venv = tmp_path / "venv"
    monkeypatch.setenv("LS_VENV", str(venv))
    lock = tmp_path / "lock.txt"

    def installed_six() -> str:
        code = "import importlib.metadata as m; print(m.version('six'))"
        return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()

    for version, hashes in SIX.items():
        lock.write_text(f"six=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes) + "\n")
        ls_install.ensure_installed(lock=lock)
        assert installed_six() == version
        assert (venv / ls_install.STAMP).read_text().strip() == ls_install.lock_digest(lock)
    (venv / "bin" / "marker").write_text("")
    ls_install.ensure_installed(lock=lock)  # same lock: reused as it is
    assert (venv / "bin" / "marker").exists()
