"""Which distributions the dry run imported that the GPU machine lacks and the bundle does not bring.

Each interpreter of the dry run records its top-level modules and their files at exit (the check's
``sitecustomize``). A module is fine when it is part of the standard library, lies under the check's own folders
(the bundle's sources and wheels, the project), or belongs to a distribution that the GPU machine's python has
(``DEVICE_PACKAGES``) or the bundle brings (``bundle.WHEELS``; in a dry run on another Python the binary ones are
this environment's build of the same version). Anything else would be missing there: the audit fails naming it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import sys
from pathlib import Path

from wsovvis.gpucheck.bundle import WHEELS

# The GPU machine's python packages ("nvidia-h200" in the device notes' KINDS.md, read 2026-11-17).
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


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def classify(imports: dict[str, str], allowed_roots: list[Path]) -> dict[str, list[str]]:
    """Top-level module -> where it comes from: ``own``, ``stdlib``, ``device``, ``bundle`` or ``missing``."""
    distributions = importlib.metadata.packages_distributions()
    device = {normalize(n) for n in DEVICE_PACKAGES}
    bundled = {normalize(n) for n in WHEELS}
    stdlib_dirs = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix)}
    found: dict[str, list[str]] = {"own": [], "stdlib": [], "device": [], "bundle": [], "missing": []}
    for name, file in sorted(imports.items()):
        path = Path(file).resolve()
        if any(path.is_relative_to(root) for root in allowed_roots):
            found["own"].append(name)
        elif name in sys.stdlib_module_names or (
            "site-packages" not in path.parts and any(path.is_relative_to(d) for d in stdlib_dirs)
        ):
            found["stdlib"].append(name)
        else:
            dists = {normalize(d) for d in distributions.get(name, [])}
            if dists & device:
                found["device"].append(name)
            elif dists & bundled:
                found["bundle"].append(name)
            else:
                found["missing"].append(f"{name} ({', '.join(sorted(dists)) or 'no distribution'}: {path})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imports", required=True, help="folder of the per-process import records")
    parser.add_argument("--result", required=True, help="where to write the JSON result")
    parser.add_argument(
        "--allowed-root", action="append", default=[], help="folder whose modules are the check's own"
    )
    args = parser.parse_args(argv)
    imports: dict[str, str] = {}
    records = sorted(Path(args.imports).glob("*.json"))
    for record in records:
        imports.update(json.loads(record.read_text(encoding="utf-8")))
    found = classify(imports, [Path(root).resolve() for root in args.allowed_root])
    result = {
        "processes": len(records),
        "modules": len(imports),
        **{k: v for k, v in found.items() if k != "stdlib"},
    }
    result["ok"] = bool(records) and not found["missing"]
    if not records:
        result["error"] = f"no import records in {args.imports}"
    elif found["missing"]:
        result["error"] = "imported, but neither on the GPU machine nor in the bundle: " + "; ".join(
            found["missing"]
        )
    print(f"audit: {json.dumps(result)}", flush=True)
    Path(args.result).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
