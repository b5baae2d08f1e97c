"""What the GPU machine's python has, and the wheels the bundle brings: derived from what the project declares.

The bundle brings every distribution the check's code needs that the GPU machine lacks. The needs start from the
project's own declarations: ``pyproject.toml``'s ``dependencies`` and its extras in ``EXTRAS``, and what the
upstream trees import (``images/runtime/requirements.in``, the runtime image's list besides wsovvis). Each is
followed through its own requirements as the runtime image's lock records them (``images/runtime/requirements.lock``:
its ``# via`` notes are the dependency graph), stopping at a distribution the GPU machine has (``DEVICE_PACKAGES``:
an environment that brings its own requirements), unless ``SHADOWED`` says the version there does not suit. The
versions are the lock's, the ones the runtime image runs together. A new import therefore needs no edit here: it is
declared in ``pyproject.toml`` (or ``requirements.in``) and locked, as the images already require.

Standard library only (``tomllib``: Python >= 3.11): this runs before the bundle is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gpucheck.guard import normalize
from wsovvis.errors import WsovvisError

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
RUNTIME_REQUIREMENTS = ROOT / "images" / "runtime" / "requirements.in"
RUNTIME_LOCK = ROOT / "images" / "runtime" / "requirements.lock"

EXTRAS = ("train",)
"""The extras of ``pyproject.toml`` the check runs: ``train`` (sacred and the training harness)."""

SHADOWED = {
    "setuptools": "sacred 0.8.7 imports pkg_resources, gone from setuptools >= 81 (the train extra's setuptools<81)",
    "wrapt": "sacred 0.8.7 needs wrapt < 2",
}
"""Distributions the GPU machine has in a version that does not suit: the bundle brings the lock's, which the
check's site folder puts before the machine's own."""

# The GPU machine's python packages ("Python packages already there" in the device notes' KINDS.md, read
# 2026-11-17; the same image for nvidia-h100-x1 and nvidia-h200).
_DEVICE_PACKAGE_LIST = """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
    build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
    cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops
    equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch
    grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig
    interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
    lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
    markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
    multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
    nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
    nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
    nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime
    onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint
    packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache
    protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
    pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
    pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
    scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
    sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore
    threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
    torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect
    urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
"""
DEVICE_PACKAGES = frozenset(_DEVICE_PACKAGE_LIST.split())

_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_PIN = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==([^\s;\\]+)")


class PackageListError(WsovvisError):
    """A declaration the bundle's wheel list cannot be derived from."""


def requirement_name(requirement: str) -> str:
    """The normalized distribution name of a PEP 508 requirement (``sacred==0.8.7`` -> ``sacred``)."""
    match = _NAME.match(requirement)
    if not match:
        raise PackageListError(f"{requirement!r} is not a requirement")
    return normalize(match.group(1))


def declared(
    pyproject: Path = PYPROJECT, requirements_in: Path = RUNTIME_REQUIREMENTS, extras: Iterable[str] = EXTRAS
) -> dict[str, str]:
    """Normalized name -> where it is declared, for everything the check needs by declaration."""
    import tomllib

    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise PackageListError(f"{pyproject}: cannot read its [project] table: {exc}") from exc
    found = {requirement_name(r): f"{pyproject.name} dependencies" for r in project.get("dependencies", [])}
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise PackageListError(f"{pyproject}: no extra {extra!r} in [project.optional-dependencies]")
        for requirement in optional[extra]:
            found.setdefault(requirement_name(requirement), f"{pyproject.name} extra {extra}")
    try:
        lines = requirements_in.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PackageListError(f"{requirements_in}: {exc}") from exc
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text and not text.startswith("-"):
            found.setdefault(requirement_name(text), requirements_in.name)
    return found


@dataclass(frozen=True)
class Lock:
    """A ``uv pip compile`` lock: each distribution's pinned version and what requires it (its ``# via``)."""

    path: Path
    versions: Mapping[str, str]
    required_by: Mapping[str, frozenset[str]]

    @classmethod
    def read(cls, path: Path = RUNTIME_LOCK) -> Lock:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise PackageListError(f"{path}: {exc}") from exc
        versions: dict[str, str] = {}
        required_by: dict[str, set[str]] = {}
        current = None
        for line in lines:
            pin = _PIN.match(line)
            if pin:
                current = normalize(pin.group(1))
                versions[current] = pin.group(2)
                required_by[current] = set()
                continue
            # "    # via NAME", or "    # via" and then one "    #   NAME" line each; "-r FILE" is a root
            words = line.strip().removeprefix("#").split() if line[:1].isspace() else []
            if words[:1] == ["via"]:
                words = words[1:]
            if words and current is not None and not words[0].startswith("-"):
                required_by[current].add(requirement_name(words[0]))
        if not versions:
            raise PackageListError(f"{path}: no pinned requirement (name==version) in it")
        return cls(path, versions, {name: frozenset(parents) for name, parents in required_by.items()})

    def requirements_of(self, name: str) -> list[str]:
        return sorted(child for child, parents in self.required_by.items() if name in parents)


def bundle_wheels(needs: Mapping[str, str] | None = None, lock: Lock | None = None) -> dict[str, str]:
    """Normalized name -> locked version of every distribution the bundle brings (see the module doc): ``needs``
    (default :func:`declared`) and what they require, by ``lock`` (default the runtime image's)."""
    needs = declared() if needs is None else needs
    lock = Lock.read() if lock is None else lock
    device = DEVICE_PACKAGES - SHADOWED.keys()
    unlocked = [
        f"{name} ({where})"
        for name, where in needs.items()
        if name not in lock.versions and name not in device
    ]
    if unlocked:
        raise PackageListError(
            f"declared but not pinned in {lock.path}: {', '.join(sorted(unlocked))}; "
            "re-lock it (docs/dev/platform.md)"
        )
    wheels: dict[str, str] = {}
    todo = sorted(needs)
    while todo:
        name = todo.pop()
        if name in device or name in wheels:
            continue
        wheels[name] = lock.versions[name]
        todo += lock.requirements_of(name)
    return dict(sorted(wheels.items()))
