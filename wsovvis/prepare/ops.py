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
import re
import shutil
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


_DISPATCH_ON_TYPE = re.compile(r"(AT_DISPATCH_\w+\(\s*)(\w+)\.type\(\)")
_TYPE_IS_CUDA = re.compile(r"(\w+)\.type\(\)\.is_cuda\(\)")
SOURCE_SUFFIXES = {".h", ".cpp", ".cu", ".cuh"}


def modernize_op_source(text: str) -> str:
    """Rewrite the ``tensor.type()`` uses that recent torch no longer compiles.

    ``AT_DISPATCH_*(value.type(), ...)`` stopped compiling once ``DeprecatedTypeProperties`` lost its conversion
    to ``ScalarType`` (torch 2.14: "no suitable conversion function"); ``scalar_type()`` is the same dispatch key.
    ``value.type().is_cuda()`` becomes ``value.is_cuda()``. The upstream files are not touched: the build compiles
    a rewritten copy.
    """
    return _TYPE_IS_CUDA.sub(r"\1.is_cuda()", _DISPATCH_ON_TYPE.sub(r"\1\2.scalar_type()", text))


def copy_modernized_sources(src: Path, destination: Path) -> list[Path]:
    """Copy an op's ``src`` folder to ``destination`` through :func:`modernize_op_source`; returns the sources."""
    for path in sorted(src.rglob("*")):
        if path.is_file() and path.suffix in SOURCE_SUFFIXES:
            target = destination / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(modernize_op_source(path.read_text(encoding="utf-8")), encoding="utf-8")
        elif path.is_file():
            target = destination / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return (
        sorted(destination.glob("*.cpp"))
        + sorted(destination.glob("cpu/*.cpp"))
        + sorted(destination.glob("cuda/*.cu"))
    )


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
    if not (Path(cpp_extension.CUDA_HOME) / "include" / "cuda_runtime.h").is_file():
        return (
            f"the CUDA toolkit found at {cpp_extension.CUDA_HOME} has no include/cuda_runtime.h "
            "(nvcc on PATH may be a wrapper): set CUDA_HOME to the toolkit root, e.g. /usr/local/cuda"
        )
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
        log.info("compiling %s from %s for CUDA archs %s (several minutes)", op.name, src, arch_list)
        saved = os.environ.get("TORCH_CUDA_ARCH_LIST")
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
        try:
            with tempfile.TemporaryDirectory(prefix=f"{op.name}-") as build_dir:
                copy = Path(build_dir) / "src"
                files = copy_modernized_sources(src, copy)
                try:
                    cpp_extension.load(
                        name=op.name,
                        sources=[str(f) for f in files],
                        extra_include_paths=[str(copy), *pip_cuda_include_dirs(cpp_extension.CUDA_HOME)],
                        extra_cflags=["-O3", "-DWITH_CUDA"],
                        extra_cuda_cflags=NVCC_FLAGS + ["-DWITH_CUDA"],
                        with_cuda=True,
                        build_directory=build_dir,
                        is_python_module=True,
                        verbose=log.isEnabledFor(logging.DEBUG),
                    )
                except (RuntimeError, OSError) as exc:
                    raise RuntimeMissingError(
                        f"compiling {op.name} from {src} for CUDA archs {arch_list} failed: {str(exc)[-3000:]}"
                    ) from exc
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
