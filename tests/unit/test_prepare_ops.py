"""Planning the CUDA op builds: one extension per distinct op source, never two modules with one name."""

from __future__ import annotations

import pytest

from tests.prepare_trees import fake_sources
from wsovvis.prepare.ops import build_ops, build_plan, cuda_build_blocker


def test_ops_with_equal_code_are_built_once_for_both(tmp_path):
    plan = build_plan(fake_sources(tmp_path))
    assert len(plan) == 1
    assert plan[0].serves == ("cutler", "seqformer")


def test_ops_with_different_code_are_built_under_different_names(tmp_path):
    plan = build_plan(fake_sources(tmp_path, seqformer_kernel="int kernel() { return 2; }"))
    assert len({op.name for op in plan}) == 2
    assert sorted(op.serves for op in plan) == [("cutler",), ("seqformer",)]


def test_build_is_skipped_with_the_reason_when_cuda_cannot_compile(tmp_path):
    blocker = cuda_build_blocker()
    if blocker is None:
        pytest.skip("this machine can compile CUDA extensions; the skip path is not taken")
    site = tmp_path / "site"
    site.mkdir()
    lines = build_ops(fake_sources(tmp_path / "src"), site, "8.0")
    assert len(lines) == 1
    assert lines[0].startswith("skipped building wsovvis_msda_") and blocker in lines[0]
    assert list(site.iterdir()) == []
