"""The prepare stage's file writer and import hook, on small fake source trees (no torch, no upstream code)."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import pytest

from tests.prepare_trees import fake_sources
from wsovvis.errors import UsageError
from wsovvis.prepare import hook
from wsovvis.prepare.runtime import PTH_NAME, extension_name, hook_files, stale_files, write_if_changed


def test_missing_source_files_are_named(tmp_path):
    sources = fake_sources(tmp_path)
    (sources.detectron2 / "projects/PointRend/point_rend/__init__.py").unlink()
    with pytest.raises(UsageError, match="point_rend/__init__.py"):
        sources.validate()


def test_second_write_changes_nothing(tmp_path):
    files = hook_files(fake_sources(tmp_path / "src"))
    site = tmp_path / "site"
    assert sorted(write_if_changed(site, files)) == sorted(files)
    before = {rel: ((site / rel).read_bytes(), (site / rel).stat().st_mtime_ns) for rel in files}
    assert write_if_changed(site, files) == []
    assert {rel: ((site / rel).read_bytes(), (site / rel).stat().st_mtime_ns) for rel in files} == before
    assert stale_files(site, files) == []


def test_changed_content_is_rewritten_and_reported_stale(tmp_path):
    files = hook_files(fake_sources(tmp_path / "src"))
    site = tmp_path / "site"
    write_if_changed(site, files)
    (site / "wsovvis_runtime/runtime.json").write_text("{}")
    assert stale_files(site, files) == ["wsovvis_runtime/runtime.json"]
    assert write_if_changed(site, files) == ["wsovvis_runtime/runtime.json"]
    assert (site / "wsovvis_runtime/runtime.json").read_bytes() == files["wsovvis_runtime/runtime.json"]


def test_pth_line_runs_the_hook_unless_switched_off(tmp_path):
    files = hook_files(fake_sources(tmp_path))
    line = files[PTH_NAME].decode()
    assert line.startswith("import ") and line.count("\n") == 1
    assert 'WSOVVIS_RUNTIME_HOOK", "1") == "0"' in line


def test_ops_differing_only_in_comments_share_one_extension(tmp_path):
    sources = fake_sources(tmp_path)
    config = json.loads(hook_files(sources)["wsovvis_runtime/runtime.json"])
    names = {op["name"]: op["extension"] for op in config["msda_ops"]}
    assert names["cutler"] == names["seqformer"]
    assert names["cutler"].startswith("wsovvis_msda_")


def test_ops_with_different_code_get_different_extensions(tmp_path):
    sources = fake_sources(tmp_path, seqformer_kernel="int kernel() { return 2; }")
    assert extension_name(sources.msda_ops_dirs["cutler"]) != extension_name(
        sources.msda_ops_dirs["seqformer"]
    )


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch):
    """A fake detectron2 package and the fake trees on sys.path, with the hook's finder installed."""
    sources = fake_sources(tmp_path / "src")
    d2 = tmp_path / "lib" / "detectron2"
    (d2 / "projects").mkdir(parents=True)
    (d2 / "__init__.py").write_text("")
    (d2 / "projects" / "__init__.py").write_text("")
    (sources.detectron2 / "projects/DeepLab/deeplab/__init__.py").write_text("from .config import NAME\n")
    (sources.detectron2 / "projects/DeepLab/deeplab/config.py").write_text("NAME = 'deeplab from v0.6'\n")
    config = json.loads(hook_files(sources)["wsovvis_runtime/runtime.json"])
    finder = hook.RuntimeFinder(config)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.syspath_prepend(str(sources.cutler / "videocutler"))
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    before = set(sys.modules)
    yield sources
    for name in set(sys.modules) - before:
        del sys.modules[name]
    hook.MSDA_PATCHED.clear()


def test_detectron2_projects_found_in_v06_tree(fake_runtime):
    deeplab = importlib.import_module("detectron2.projects.deeplab")
    assert deeplab.NAME == "deeplab from v0.6"
    assert Path(deeplab.__file__).is_relative_to(fake_runtime.detectron2)


def test_op_module_imports_without_extension_and_is_dispatched(fake_runtime):
    name = "mask2former.modeling.pixel_decoder.ops.functions.ms_deform_attn_func"
    for package in ("mask2former", "mask2former/modeling", "mask2former/modeling/pixel_decoder"):
        (fake_runtime.cutler / "videocutler" / package / "__init__.py").write_text("")
    module = importlib.import_module(name)
    assert hasattr(module.MSDeformAttnFunction, "compiled")
    assert module.MSDeformAttnFunction.extension_module is None
    assert {name: ""} == hook.MSDA_PATCHED
    assert "MultiScaleDeformableAttention" not in sys.modules


def test_op_modules_outside_the_configured_folders_are_left_alone(fake_runtime, tmp_path):
    other = tmp_path / "lib" / "other" / "ops" / "functions"
    other.mkdir(parents=True)
    for folder in (other.parent.parent, other.parent, other):
        (folder / "__init__.py").write_text("")
    (other / "ms_deform_attn_func.py").write_text("class MSDeformAttnFunction:\n    pass\n")
    module = importlib.import_module("other.ops.functions.ms_deform_attn_func")
    assert not hasattr(module.MSDeformAttnFunction, "compiled")


def test_pil_linear_alias_only_when_absent():
    modern = types.SimpleNamespace(BILINEAR=2)
    hook.alias_pil_linear(modern)
    assert modern.LINEAR == 2
    old = types.SimpleNamespace(BILINEAR=2, LINEAR=7)
    hook.alias_pil_linear(old)
    assert old.LINEAR == 7
