"""tests/runtime_trees.py: where the runtime tests take the CutLER / VNext / detectron2 trees from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import runtime_trees

NAMES = ("cutler", "vnext", "detectron2")


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout whose third_party/ submodules are not populated, a site-packages without the hook, no env."""
    root = tmp_path / "checkout"
    for folder in runtime_trees.TREES.values():
        (root / "third_party" / folder).mkdir(parents=True)
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(runtime_trees, "ROOT", root)
    monkeypatch.setattr(runtime_trees, "default_site_packages", lambda: site)
    for name in NAMES:
        monkeypatch.delenv(runtime_trees.env_var(name), raising=False)
    monkeypatch.delenv("WSOVVIS_THIRD_PARTY_DIR", raising=False)
    return root


def prepare_runtime(checkout: Path, sources: dict[str, str]) -> None:
    folder = runtime_trees.default_site_packages() / runtime_trees.PACKAGE
    folder.mkdir()
    (folder / "runtime.json").write_text(json.dumps({"sources": sources}))


def test_unpopulated_submodules_without_anything_else(checkout: Path) -> None:
    assert runtime_trees.source_dirs() == {
        name: str(checkout / "third_party" / folder) for name, folder in runtime_trees.TREES.items()
    }


def test_the_prepared_runtimes_trees_before_empty_submodules(checkout: Path) -> None:
    prepared = {name: f"/src/{name}" for name in NAMES}
    prepare_runtime(checkout, prepared)
    assert runtime_trees.source_dirs() == prepared


def test_populated_submodule_before_the_prepared_runtime(checkout: Path) -> None:
    prepare_runtime(checkout, {name: f"/src/{name}" for name in NAMES})
    (checkout / "third_party" / "VNext" / "setup.py").write_text("")
    dirs = runtime_trees.source_dirs()
    assert dirs["vnext"] == str(checkout / "third_party" / "VNext")
    assert dirs["cutler"] == "/src/cutler"


def test_environment_first(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prepare_runtime(checkout, {name: f"/src/{name}" for name in NAMES})
    monkeypatch.setenv("WSOVVIS_THIRD_PARTY_DIR", "/all")
    monkeypatch.setenv("WSOVVIS_CUTLER_DIR", "/mine/CutLER")
    assert runtime_trees.source_dirs() == {
        "cutler": "/mine/CutLER",
        "vnext": "/all/VNext",
        "detectron2": "/all/detectron2",
    }


def test_unreadable_runtime_json_is_ignored(checkout: Path) -> None:
    folder = runtime_trees.default_site_packages() / runtime_trees.PACKAGE
    folder.mkdir()
    (folder / "runtime.json").write_text("{not json")
    assert runtime_trees.source_dirs()["detectron2"] == str(checkout / "third_party" / "detectron2")
