"""Small fake CutLER / VNext / detectron2 trees with just the files ``wsovvis prepare`` looks at (no upstream code)."""

from __future__ import annotations

from pathlib import Path

from wsovvis.prepare.runtime import CUTLER_OPS, REQUIRED_FILES, SEQFORMER_OPS, RuntimeSources

OP_FUNC = """
import MultiScaleDeformableAttention as MSDA


class MSDeformAttnFunction:
    @staticmethod
    def apply(*args):
        return MSDA.ms_deform_attn_forward(*args)
"""


def fake_sources(root: Path, seqformer_kernel: str = "int kernel() { return 1; }") -> RuntimeSources:
    sources = RuntimeSources.from_dirs(root / "CutLER", root / "VNext", root / "detectron2")
    for name, relatives in REQUIRED_FILES.items():
        for rel in relatives:
            path = getattr(sources, name) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(OP_FUNC if rel.endswith("ms_deform_attn_func.py") else "")
    for ops, kernel, licence in (
        (sources.cutler / CUTLER_OPS, "int kernel() { return 1; }", "/* Copyright Facebook, modified */"),
        (sources.vnext / SEQFORMER_OPS, seqformer_kernel, "// Copyright SenseTime"),
    ):
        (ops / "src" / "cuda").mkdir(parents=True)
        (ops / "src" / "cuda" / "kernel.cu").write_text(f"{licence}\n\n{kernel}\n")
        for package in ("", "functions"):
            (ops / package / "__init__.py").write_text("")
    return sources
