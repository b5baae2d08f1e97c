"""Import hooks that make the pinned CutLER/VNext/detectron2 runtime work without editing upstream files.

``wsovvis prepare`` copies this file into the runtime's site-packages as ``wsovvis_runtime/__init__.py`` (with
``msda.py`` beside it and the paths of the source trees in ``runtime.json``) and adds ``wsovvis_runtime.pth``, so
every interpreter of that environment runs :func:`install` at start-up. It imports only the standard library at
start-up (torch and PIL are touched only when the program imports them) and never imports ``wsovvis``, so the
runtime keeps working when the project tree moves. ``WSOVVIS_RUNTIME_HOOK=0`` makes the ``.pth`` line skip it.

What it does:

* ``detectron2.projects.deeplab`` / ``point_rend`` come from detectron2 v0.6's ``projects/`` (VNext's fork has
  neither), and ``detectron2.projects.seqformer`` from VNext's ``projects/SeqFormer``, whatever way detectron2
  was installed.
* ``PIL.Image.LINEAR`` is aliased to ``BILINEAR`` when Pillow (>= 10) lacks it.
* In the deformable-attention ops of SeqFormer and VideoCutLER's Mask2Former (any module
  ``*.ops.functions.ms_deform_attn_func`` under a configured ops folder) ``MSDeformAttnFunction`` is replaced by
  a dispatcher: the compiled CUDA op for CUDA tensors when an extension is importable, the project's pure-PyTorch
  ``msda.ms_deform_attn`` otherwise. A missing extension no longer fails the import. :data:`MSDA_CALLS` counts
  which path ran, so a check can confirm that the fast path is used.
* ``pycocotools.ytvos`` / ``ytvoseval`` (the YouTube-VIS API that SeqFormer imports; PyPI's pycocotools lacks it)
  come from the copy in VideoCutLER's tree, which works with numpy 2, unless an installed package provides them.
* The folders in ``sys_path`` (VideoCutLER's ``videocutler`` for ``mask2former``/``mask2former_video``, and its
  ``demo_video`` for ``predictor``) are appended to ``sys.path``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import json
import logging
import os
import sys
import types
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CONFIG_NAME = "runtime.json"
UPSTREAM_EXTENSION = "MultiScaleDeformableAttention"
MSDA_FUNC_SUFFIX = ".ops.functions.ms_deform_attn_func"
PROJECTS_PREFIX = "detectron2.projects."

MSDA_CALLS: Counter[str] = Counter()
"""How often each deformable-attention path ran in this process: keys ``cuda`` and ``pytorch``."""

MSDA_PATCHED: dict[str, str] = {}
"""Patched op module name -> the extension it dispatches CUDA tensors to (``""`` for none: PyTorch only)."""

_installed: dict[str, Any] = {}


def load_config(directory: str | None = None) -> dict[str, Any]:
    """The ``runtime.json`` written by ``wsovvis prepare`` beside this module."""
    directory = directory or os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(directory, CONFIG_NAME), encoding="utf-8") as handle:
        return json.load(handle)


def _under(path: str | None, folder: str) -> bool:
    if not path:
        return False
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


class _PatchingLoader(importlib.abc.Loader):
    """Runs ``before()`` and ``after(module)`` around the wrapped loader's ``exec_module``."""

    def __init__(
        self,
        loader: importlib.abc.Loader,
        after: Callable[[types.ModuleType], None],
        before: Callable[[], Callable[[], None]] | None = None,
    ) -> None:
        self._loader = loader
        self._after = after
        self._before = before

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        cleanup = self._before() if self._before else None
        try:
            self._loader.exec_module(module)
        finally:
            if cleanup:
                cleanup()
        self._after(module)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename, ... for inspect, linecache and tracebacks
        return getattr(self._loader, name)


class RuntimeFinder(importlib.abc.MetaPathFinder):
    """Finds detectron2 projects in the configured folders and wraps the loaders of the modules it patches."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.projects: dict[str, str] = dict(config.get("detectron2_projects", {}))
        self.msda_ops: list[dict[str, str]] = list(config.get("msda_ops", []))
        self.fallback_modules: dict[str, str] = dict(config.get("fallback_modules", {}))

    def find_spec(
        self, fullname: str, path: Any = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.startswith(PROJECTS_PREFIX) and fullname.count(".") == 2:
            folder = self.projects.get(fullname[len(PROJECTS_PREFIX) :])
            if folder:
                init = os.path.join(folder, "__init__.py")
                if os.path.isfile(init):
                    return importlib.util.spec_from_file_location(
                        fullname, init, submodule_search_locations=[folder]
                    )
            return None
        if fullname in self.fallback_modules:
            spec = self._find_elsewhere(fullname, path, target)
            if spec is None and os.path.isfile(self.fallback_modules[fullname]):
                spec = importlib.util.spec_from_file_location(fullname, self.fallback_modules[fullname])
            return spec
        if fullname == "PIL.Image":
            spec = self._find_elsewhere(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, alias_pil_linear)
            return spec
        if fullname.endswith(MSDA_FUNC_SUFFIX):
            spec = self._find_elsewhere(fullname, path, target)
            if spec is None or spec.loader is None:
                return spec
            for op in self.msda_ops:
                if _under(spec.origin, op["dir"]):
                    extension = op.get("extension", "")
                    spec.loader = _PatchingLoader(
                        spec.loader,
                        lambda module, extension=extension: patch_msda_module(module, extension),
                        before=provide_placeholder_extension,
                    )
                    break
            return spec
        return None

    def _find_elsewhere(
        self, fullname: str, path: Any, target: types.ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None


def alias_pil_linear(image_module: types.ModuleType) -> None:
    """Pillow >= 10 dropped ``Image.LINEAR``; detectron2 v0.6 and VNext still use it as a default argument."""
    if not hasattr(image_module, "LINEAR"):
        image_module.LINEAR = image_module.BILINEAR


def provide_placeholder_extension() -> Callable[[], None] | None:
    """Let ``import MultiScaleDeformableAttention`` succeed while an op module without the extension executes.

    The placeholder is removed again right after, so the name still means "the real extension" elsewhere.
    """
    if UPSTREAM_EXTENSION in sys.modules or importlib.util.find_spec(UPSTREAM_EXTENSION) is not None:
        return None
    placeholder = types.ModuleType(UPSTREAM_EXTENSION)
    placeholder.__doc__ = "stand-in installed by wsovvis_runtime while the extension is not built"
    sys.modules[UPSTREAM_EXTENSION] = placeholder

    def cleanup() -> None:
        if sys.modules.get(UPSTREAM_EXTENSION) is placeholder:
            del sys.modules[UPSTREAM_EXTENSION]

    return cleanup


def load_extension(name: str) -> types.ModuleType | None:
    """The compiled op: the project-built ``name`` first, then upstream's ``MultiScaleDeformableAttention``."""
    for candidate in (name, UPSTREAM_EXTENSION):
        if not candidate:
            continue
        try:
            module = importlib.import_module(candidate)
        except (ImportError, OSError) as exc:
            log.debug("deformable attention extension %s not usable: %s", candidate, exc)
            continue
        if hasattr(module, "ms_deform_attn_forward"):
            return module
    return None


def patch_msda_module(module: types.ModuleType, extension_name: str) -> None:
    """Replace the op module's ``MSDeformAttnFunction`` by a CUDA-or-PyTorch dispatcher."""
    cuda_function = module.MSDeformAttnFunction
    extension = load_extension(extension_name)
    if extension is not None:
        module.MSDA = extension
    MSDA_PATCHED[module.__name__] = extension.__name__ if extension is not None else ""

    class MSDeformAttnFunction:
        """Dispatches to the compiled op for CUDA tensors when it is built, to the PyTorch op otherwise."""

        compiled = cuda_function
        extension_module = extension

        @staticmethod
        def apply(
            value: Any,
            spatial_shapes: Any,
            level_start_index: Any,
            sampling_locations: Any,
            attention_weights: Any,
            im2col_step: int,
        ) -> Any:
            if extension is not None and value.is_cuda:
                output = cuda_function.apply(
                    value,
                    spatial_shapes,
                    level_start_index,
                    sampling_locations,
                    attention_weights,
                    im2col_step,
                )
                MSDA_CALLS["cuda"] += 1
                return output
            from . import msda

            output = msda.ms_deform_attn(value, spatial_shapes, sampling_locations, attention_weights)
            MSDA_CALLS["pytorch"] += 1
            return output

    MSDeformAttnFunction.__module__ = module.__name__
    module.MSDeformAttnFunction = MSDeformAttnFunction


def install(config: dict[str, Any] | None = None) -> bool:
    """Put the finder first on ``sys.meta_path`` and the configured folders on ``sys.path``; once per process."""
    if _installed:
        return False
    if config is None:
        try:
            config = load_config()
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"wsovvis_runtime: not installed, cannot read {CONFIG_NAME}: {exc}\n")
            return False
    finder = RuntimeFinder(config)
    sys.meta_path.insert(0, finder)
    if "PIL.Image" in sys.modules:  # imported before the hook (e.g. by another .pth): alias it now
        alias_pil_linear(sys.modules["PIL.Image"])
    for entry in config.get("sys_path", []):
        if entry not in sys.path:
            sys.path.append(entry)
    _installed.update(config=config, finder=finder)
    return True


def installed_config() -> dict[str, Any] | None:
    """The configuration this process runs with, or None when the hook is not installed."""
    return _installed.get("config")
