"""Build the CUDA deformable-attention op(s) into the runtime's site-packages under project-owned names.

Upstream, VideoCutLER's and SeqFormer's ``setup.py`` both install a module named ``MultiScaleDeformableAttention``,
so the second install silently replaces the first. Here each distinct source set (compared without comments, see
``runtime.ops_source_digest``) is compiled once as ``wsovvis_msda_<digest>``, and the hook routes each op folder to
its own module. Compiling needs torch built with CUDA and a CUDA toolkit (nvcc), not a GPU, so it also runs in an
image build.
"""

from __future__ import annotations

import json
import logging
import os
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wsovvis import storage
from wsovvis.errors import RuntimeMissingError
from wsovvis.prepare.runtime import RuntimeSources, extension_name

log = logging.getLogger(__name__)

NVCC_FLAGS = [
    "-O3",
    "-DCUDA_HAS_FP16=1",
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
]


@dataclass(frozen=True)
class OpBuild:
    """One extension to compile and the op folders it serves."""

    name: str
    source_dir: Path
    serves: tuple[str, ...]


def build_plan(sources: RuntimeSources) -> list[OpBuild]:
    """One build per distinct op source; ops with equal sources share it."""
    by_name: dict[str, list[tuple[str, Path]]] = {}
    for op, ops_dir in sorted(sources.msda_ops_dirs.items()):
        by_name.setdefault(extension_name(ops_dir), []).append((op, ops_dir))
    return [
        OpBuild(name, entries[0][1], tuple(op for op, _ in entries))
        for name, entries in sorted(by_name.items())
    ]


def extension_path(site_packages: Path, name: str) -> Path:
    return site_packages / f"{name}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"


def build_stamp(arch_list: str) -> dict[str, str]:
    import torch

    return {"torch": torch.__version__, "cuda": str(torch.version.cuda), "arch_list": arch_list}


def pip_cuda_include_dirs(cuda_home: str) -> list[str]:
    """Header folders of torch's pip CUDA wheels (``nvidia/*/include``), when the toolkit lacks the math headers.

    torch's CUDA headers include cuSPARSE/cuBLAS headers, which a minimal toolkit (nvcc and the runtime only) does
    not ship but the ``nvidia-*`` wheels torch depends on do.
    """
    if (Path(cuda_home) / "include" / "cusparse.h").is_file():
        return []
    try:
        import nvidia
    except ImportError:
        return []
    return sorted(
        str(include)
        for root in nvidia.__path__
        for include in Path(root).glob("*/include")
        if (include / "cusparse.h").is_file() or (include / "cublas_v2.h").is_file()
    )


def cuda_build_blocker() -> str | None:
    """Why the ops cannot be compiled here, or None when they can."""
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError as exc:
        return f"torch is not importable ({exc})"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    if cpp_extension.CUDA_HOME is None:
        return "no CUDA toolkit found (set CUDA_HOME or put nvcc on PATH)"
    return None


def build_ops(sources: RuntimeSources, site_packages: Path, arch_list: str | None) -> list[str]:
    """Compile what is missing or stale; returns one line per extension saying what happened.

    Without a CUDA toolkit nothing is compiled and the lines say so: the hook then uses the PyTorch op.
    """
    plan = build_plan(sources)
    blocker = cuda_build_blocker()
    if blocker:
        return [
            f"skipped building {op.name} (for {', '.join(op.serves)}): {blocker}; "
            "the runtime uses the pure-PyTorch deformable attention instead"
            for op in plan
        ]
    import torch
    from torch.utils import cpp_extension

    if not arch_list:
        arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST", "")
    if not arch_list:
        if not torch.cuda.is_available():
            raise RuntimeMissingError(
                "no GPU to take the CUDA arch list from: pass --cuda-arch-list (e.g. '8.0;8.6;9.0')"
            )
        major, minor = torch.cuda.get_device_capability()
        arch_list = f"{major}.{minor}"
    messages = []
    for op in plan:
        target = extension_path(site_packages, op.name)
        stamp_path = target.with_name(f"{op.name}.build.json")
        stamp = build_stamp(arch_list)
        if target.is_file() and stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
            messages.append(f"{op.name} (for {', '.join(op.serves)}) already built for {arch_list}")
            continue
        src = op.source_dir / "src"
        files = [
            str(p)
            for p in sorted(src.glob("*.cpp")) + sorted(src.glob("cpu/*.cpp")) + sorted(src.glob("cuda/*.cu"))
        ]
        log.info("compiling %s from %s for CUDA archs %s (several minutes)", op.name, src, arch_list)
        saved = os.environ.get("TORCH_CUDA_ARCH_LIST")
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
        try:
            with tempfile.TemporaryDirectory(prefix=f"{op.name}-") as build_dir:
                cpp_extension.load(
                    name=op.name,
                    sources=files,
                    extra_include_paths=[str(src), *pip_cuda_include_dirs(cpp_extension.CUDA_HOME)],
                    extra_cflags=["-O3", "-DWITH_CUDA"],
                    extra_cuda_cflags=NVCC_FLAGS + ["-DWITH_CUDA"],
                    with_cuda=True,
                    build_directory=build_dir,
                    is_python_module=True,
                    verbose=log.isEnabledFor(logging.DEBUG),
                )
                built = Path(build_dir) / f"{op.name}.so"
                storage.write_bytes(target, built.read_bytes())
        finally:
            if saved is None:
                os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
            else:
                os.environ["TORCH_CUDA_ARCH_LIST"] = saved
        storage.write_text(stamp_path, json.dumps(stamp, sort_keys=True) + "\n")
        messages.append(f"built {target} (for {', '.join(op.serves)}) for {arch_list}")
    return messages
