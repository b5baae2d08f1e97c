"""The GPU check's measuring parts, each run by ``gpucheck.run`` in its own interpreter.

``python -m gpucheck.parts PART --work DIR --device cuda|cpu --result FILE [--iterations N]`` writes one
JSON object to FILE: ``ok`` plus the part's figures. The interpreter starts with the check's site folder active
(its ``sitecustomize`` runs the runtime hook), so CutLER, VNext and detectron2 import as in a prepared runtime.

* ``msda``: the compiled deformable-attention op against the PyTorch op, forward and backward, float32 and float64,
  and both timed at a Mask2Former-encoder size;
* ``maskgen``: VideoCutLER (random weights) through ``wsovvis.maskgen.mask_gen`` on generated videos: frames/s,
  peak GPU memory, and which deformable-attention path ran;
* ``train``: the tiny SeqFormer under the training harness for N iterations: it/s and peak GPU memory;
* ``nccl``: a process group on the GPU (NCCL; gloo on the CPU) with an all-reduce and a broadcast.

On the CPU (``--device cpu``, the dry run) the same code runs with tiny inputs; ``msda`` then compares the PyTorch
op with itself, which exercises everything but the compiled kernel.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CUTLER_MSDA_MODULE = "mask2former.modeling.pixel_decoder.ops.functions.ms_deform_attn_func"
TRAIN_SPEED = re.compile(r"Overall training speed: (\d+) iterations in \S+ \(([\d.]+) s / it\)")


def _cuda_home_for_build(torch_cuda_home: str | None) -> str | None:
    """A CUDA toolkit root with nvcc and the runtime headers: torch's guess, then the usual places."""
    import glob
    import os
    import shutil

    nvcc = shutil.which("nvcc")
    candidates = [os.environ.get("CUDA_HOME"), torch_cuda_home, "/usr/local/cuda"]
    candidates += [os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))] if nvcc else []
    candidates += sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for root in filter(None, candidates):
        if os.path.isfile(os.path.join(root, "include", "cuda_runtime.h")) and os.path.isfile(
            os.path.join(root, "bin", "nvcc")
        ):
            return root
    return None


def part_env(args: argparse.Namespace) -> dict[str, Any]:
    """What the machine has: python and its headers, torch and CUDA, the GPU, the compiler, key packages."""
    import importlib
    import os
    import shutil
    import subprocess
    import sysconfig

    include = sysconfig.get_paths()["include"]
    result: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "cpus": os.cpu_count(),
        "python_h": os.path.isfile(os.path.join(include, "Python.h")),
    }
    import torch
    from torch.utils import cpp_extension

    result.update(
        torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available()
    )
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        props = torch.cuda.get_device_properties(0)
        result.update(
            gpu=props.name, capability=f"{major}.{minor}", gpu_mem_gib=round(props.total_memory / 2**30, 1)
        )
    result["cuda_home_for_build"] = _cuda_home_for_build(cpp_extension.CUDA_HOME)
    nvcc = shutil.which("nvcc") or (
        os.path.join(result["cuda_home_for_build"], "bin", "nvcc") if result["cuda_home_for_build"] else None
    )
    if nvcc:
        lines = subprocess.run(
            [nvcc, "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        result["nvcc"] = f"{nvcc}: {lines[-1] if lines else '?'}"
    for name in (
        "torchvision",
        "numpy",
        "PIL",
        "cv2",
        "timm",
        "scipy",
        "setuptools",
        "yaml",
        "tqdm",
        "ninja",
    ):
        try:
            result[f"version_{name}"] = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError as exc:
            result[f"version_{name}"] = f"missing ({exc})"
    problems = []
    if not result["python_h"]:
        problems.append(f"no Python.h in {include}: C++/CUDA extensions cannot be built")
    if args.device == "cuda":
        if not result["cuda_available"]:
            problems.append(f"torch {torch.__version__} sees no GPU")
        if not result["cuda_home_for_build"]:
            problems.append("no CUDA toolkit (nvcc + include/cuda_runtime.h) found")
    result["ok"] = not problems
    if problems:
        result["error"] = "; ".join(problems)
    print(f"env: {json.dumps(result)}", flush=True)
    return result


def _peak_memory(device: str) -> dict[str, float]:
    import torch

    if device != "cuda":
        return {}
    return {
        "peak_gpu_mem_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
        "peak_gpu_mem_reserved_mib": round(torch.cuda.max_memory_reserved() / 2**20, 1),
    }


def _msda_calls() -> dict[str, int]:
    import wsovvis_runtime

    return dict(wsovvis_runtime.MSDA_CALLS)


def _msda_inputs(
    torch: Any, shapes: list[tuple[int, int]], n: int, m: int, d: int, lq: int, p: int, **kw: Any
):
    spatial = torch.tensor(shapes, dtype=torch.long, device=kw["device"])
    level_start = torch.cat((spatial.new_zeros((1,)), spatial.prod(1).cumsum(0)[:-1]))
    generator = torch.Generator(device=kw["device"]).manual_seed(0)
    s, levels = int(spatial.prod(1).sum()), len(shapes)
    value = torch.rand(n, s, m, d, generator=generator, **kw)
    loc = torch.rand(n, lq, m, levels, p, 2, generator=generator, **kw)
    weights = torch.rand(n, lq, m, levels, p, generator=generator, **kw)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    return spatial, level_start, value, loc, weights


def _max_diff(a: Any, b: Any) -> tuple[float, float]:
    """(max abs difference, that divided by the reference's max abs value)."""
    diff = float((a - b).abs().max())
    return diff, diff / max(float(b.abs().max()), 1e-30)


def part_msda(args: argparse.Namespace) -> dict[str, Any]:
    import importlib

    import torch
    import wsovvis_runtime
    from wsovvis_runtime import msda

    module = importlib.import_module(CUTLER_MSDA_MODULE)
    function = module.MSDeformAttnFunction
    compiled = args.device == "cuda"
    if compiled and function.extension_module is None:
        return {
            "ok": False,
            "error": f"no compiled extension for {CUTLER_MSDA_MODULE}: {wsovvis_runtime.MSDA_PATCHED}",
        }

    def candidate(value, spatial, level_start, loc, weights):
        if compiled:
            return function.compiled.apply(value, spatial, level_start, loc, weights, 64)
        return msda.ms_deform_attn(value, spatial, loc, weights)

    result: dict[str, Any] = {
        "candidate": function.extension_module.__name__
        if compiled
        else "PyTorch op (CPU: compared with itself)",
        "cases": [],
    }
    tolerances = {torch.float32: (1e-4, 1e-3), torch.float64: (1e-10, 1e-9)}  # relative: forward, backward
    small = {"shapes": [(8, 8), (4, 4)], "n": 2, "m": 2, "d": 4, "lq": 5, "p": 3}
    medium = {"shapes": [(24, 32), (12, 16), (6, 8)], "n": 2, "m": 8, "d": 32, "lq": 100, "p": 4}
    ok = True
    for name, size in (("small", small), ("medium", medium)):
        for dtype in (torch.float32, torch.float64):
            spatial, level_start, *tensors = _msda_inputs(torch, device=args.device, dtype=dtype, **size)
            leaves = [t.clone().requires_grad_(True) for t in tensors]
            refs = [t.clone().requires_grad_(True) for t in tensors]
            out = candidate(leaves[0], spatial, level_start, leaves[1], leaves[2])
            ref = msda.ms_deform_attn(refs[0], spatial, refs[1], refs[2])
            grad_out = torch.rand(
                ref.shape,
                generator=torch.Generator(device=args.device).manual_seed(1),
                device=args.device,
                dtype=dtype,
            )
            out.backward(grad_out)
            ref.backward(grad_out)
            fwd_abs, fwd_rel = _max_diff(out.detach(), ref.detach())
            grads = {
                label: _max_diff(a.grad, b.grad)
                for label, a, b in zip(
                    ("value", "sampling_locations", "attention_weights"), leaves, refs, strict=True
                )
            }
            fwd_tol, bwd_tol = tolerances[dtype]
            case_ok = fwd_rel <= fwd_tol and all(rel <= bwd_tol for _, rel in grads.values())
            ok = ok and case_ok
            result["cases"].append(
                {
                    "case": name,
                    "dtype": str(dtype).removeprefix("torch."),
                    "ok": case_ok,
                    "forward_max_abs_diff": fwd_abs,
                    "forward_max_rel_diff": fwd_rel,
                    "backward_max_abs_diff": {k: v[0] for k, v in grads.items()},
                    "backward_max_rel_diff": {k: v[1] for k, v in grads.items()},
                }
            )
            print(
                f"msda {name} {dtype}: forward max abs diff {fwd_abs:.3g}, backward "
                + ", ".join(f"{k} {v[0]:.3g}" for k, v in grads.items()),
                flush=True,
            )
    result["timing"] = _msda_timing(torch, msda, candidate, args.device)
    result["ok"] = ok
    return result


def _msda_timing(torch: Any, msda: Any, candidate: Any, device: str) -> dict[str, Any]:
    """Forward+backward ms of the candidate and the PyTorch op on the same inputs (median of a few runs)."""
    if device == "cuda":  # Mask2Former's encoder on 2 frames of 480x640: levels at 1/8, 1/16, 1/32
        size = {"shapes": [(60, 80), (30, 40), (15, 20)], "n": 2, "m": 8, "d": 32, "lq": 6300, "p": 4}
        repeats = 10
    else:
        size = {"shapes": [(8, 8), (4, 4)], "n": 1, "m": 2, "d": 4, "lq": 80, "p": 2}
        repeats = 2
    spatial, level_start, value, loc, weights = _msda_inputs(
        torch, device=device, dtype=torch.float32, **size
    )
    leaves = [t.requires_grad_(True) for t in (value, loc, weights)]
    n, lq, m, d = size["n"], size["lq"], size["m"], size["d"]
    # A dense gradient, as the output projection gives it: the compiled backward requires a contiguous one.
    grad = torch.rand(n, lq, m * d, device=device, generator=torch.Generator(device=device).manual_seed(2))

    def timed(fn) -> float:
        times = []
        for _ in range(repeats + 2):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn().backward(grad)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return sorted(times[2:])[len(times[2:]) // 2] * 1000

    fast = timed(lambda: candidate(leaves[0], spatial, level_start, leaves[1], leaves[2]))
    slow = timed(lambda: msda.ms_deform_attn(leaves[0], spatial, leaves[1], leaves[2]))
    print(f"msda forward+backward at {size}: candidate {fast:.2f} ms, PyTorch op {slow:.2f} ms", flush=True)
    return {"size": size, "candidate_ms": round(fast, 3), "pytorch_ms": round(slow, 3)}


class _TimedBackend:
    """Wraps a mask-gen backend to time its ``predict`` calls (the model alone, without reading and packing)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.name = backend.name
        self.calls: list[tuple[int, float]] = []

    def settings(self) -> dict[str, Any]:
        return self._backend.settings()

    def predict(self, frames: Any) -> Any:
        import torch

        start = time.perf_counter()
        prediction = self._backend.predict(frames)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.calls.append((len(frames), time.perf_counter() - start))
        return prediction


def part_maskgen(args: argparse.Namespace) -> dict[str, Any]:
    from wsovvis import shards
    from wsovvis.maskgen import MaskGenConfig, mask_gen
    from wsovvis.maskgen.videocutler import VideoCutlerBackend, VideoCutlerOptions
    from wsovvis.synth import make_dataset

    work = Path(args.work) / "maskgen"
    cuda = args.device == "cuda"
    videos, frames = (3, 24) if cuda else (2, 3)
    data = make_dataset(work / "data", videos, seed=3, min_frames=frames, max_frames=frames)
    manifest = str(work / "manifest.json")
    shards.plan_shards(data.frames_root, 1, manifest)
    # On the GPU the config's own test size (shortest edge 360); on the CPU a tiny one.
    opts = () if cuda else ("INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96")
    backend = _TimedBackend(
        VideoCutlerBackend(
            VideoCutlerOptions(
                cutler_dir=args.cutler, weights=None, confidence=0.0, device=args.device, opts=opts
            )
        )
    )
    start = time.perf_counter()
    report = mask_gen(MaskGenConfig(manifest, 0, data.frames_root, str(work / "masks")), backend)
    seconds = time.perf_counter() - start
    calls = _msda_calls()
    done = report.ids("done") + report.ids("empty")
    # The first video includes building the model and the first CUDA kernels; the rest is steady state.
    steady = backend.calls[1:] or backend.calls
    model_fps = sum(n for n, _ in steady) / max(sum(s for _, s in steady), 1e-9)
    result = {
        "videos": len(data.videos),
        "frames_per_video": frames,
        "frame_sizes": sorted({f"{v.height}x{v.width}" for v in data.videos}),
        "videos_done": len(done),
        "seconds_total": round(seconds, 2),
        "maskgen_frames_per_s_end_to_end": round(report.frames_per_second, 2),
        "maskgen_frames_per_s_model": round(model_fps, 2),
        "predict_calls": [{"frames": n, "seconds": round(s, 3)} for n, s in backend.calls],
        "msda_calls": calls,
        **_peak_memory(args.device),
    }
    path = "cuda" if cuda else "pytorch"
    result["msda_path_taken"] = path if calls.get(path) else "none"
    result["ok"] = (
        len(done) == len(data.videos) and calls.get(path, 0) > 0 and (not cuda or not calls.get("pytorch"))
    )
    if not result["ok"]:
        result["error"] = (
            f"videos done {len(done)}/{len(data.videos)}; deformable attention calls {calls} (expected only {path})"
        )
    print(f"maskgen: {json.dumps(result)}", flush=True)
    return result


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def part_train(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from wsovvis.synth import make_dataset
    from wsovvis.train.config import CPU_SEQFORMER_OPTS, load_config
    from wsovvis.train.harness import train

    work = Path(args.work) / "train"
    data = make_dataset(work / "data", 2, seed=4, min_frames=4, max_frames=4)
    vnext = Path(args.vnext)
    # The demo's tiny SeqFormer (ResNet-18, one encoder and one decoder layer, 2-frame clips at 96 px).
    opts = {**CPU_SEQFORMER_OPTS, "SOLVER.MAX_ITER": args.iterations, "SOLVER.CHECKPOINT_PERIOD": 100000}
    config = work / "seqformer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "d2_cfg_path": str(vnext / "projects/SeqFormer/configs/base_ytvis.yaml"),
                "d2_opts": [item for pair in opts.items() for item in pair],
                "device": args.device,
                "num_gpus": 1,
                "output_uri": str(work / "out"),
                "scratch_dir": str(work / "scratch"),
                "data": {
                    "train_json": data.gt_json,
                    "train_img_root": data.frames_root,
                    "val_json": data.gt_json,
                    "val_img_root": data.frames_root,
                },
            }
        ),
        encoding="utf-8",
    )
    capture = _Capture()
    logging.getLogger("detectron2.engine.hooks").addHandler(capture)
    start = time.perf_counter()
    train(load_config([str(config)]))
    seconds = time.perf_counter() - start
    speed = [m for m in capture.messages if TRAIN_SPEED.search(m)]
    result: dict[str, Any] = {"iterations": args.iterations, "seconds_total": round(seconds, 2)}
    if speed:
        timed, per_it = TRAIN_SPEED.search(speed[-1]).groups()
        result["timed_iterations"] = int(timed)
        result["train_it_per_s"] = round(1 / float(per_it), 2) if float(per_it) else None
    result["msda_calls"] = _msda_calls()
    result.update(_peak_memory(args.device))
    final = work / "out" / "model_final.pth"
    path = "cuda" if args.device == "cuda" else "pytorch"
    result["ok"] = final.is_file() and result["msda_calls"].get(path, 0) > 0
    if not result["ok"]:
        result["error"] = (
            f"model_final.pth written: {final.is_file()}; deformable attention calls {result['msda_calls']}"
        )
    print(f"train: {json.dumps(result)}", flush=True)
    return result


def part_nccl(args: argparse.Namespace) -> dict[str, Any]:
    import socket

    import torch
    import torch.distributed as dist

    cuda = args.device == "cuda"
    backend = "nccl" if cuda else "gloo"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if cuda:
        torch.cuda.set_device(0)
    start = time.perf_counter()
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", world_size=1, rank=0)
    try:
        tensor = torch.full((1 << 20,), 2.0, device=args.device)
        dist.all_reduce(tensor)
        dist.broadcast(tensor, 0)
        if cuda:
            torch.cuda.synchronize()
        ok = bool((tensor == 2.0).all())
    finally:
        dist.destroy_process_group()
    result = {"backend": backend, "world_size": 1, "ok": ok, "seconds": round(time.perf_counter() - start, 3)}
    if cuda:
        version = torch.cuda.nccl.version()
        result["nccl_version"] = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
    print(f"nccl: {json.dumps(result)}", flush=True)
    return result


PARTS = {"env": part_env, "msda": part_msda, "maskgen": part_maskgen, "train": part_train, "nccl": part_nccl}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=sorted(PARTS))
    parser.add_argument("--work", required=True, help="scratch folder of this check")
    parser.add_argument("--device", required=True, choices=("cuda", "cpu"))
    parser.add_argument("--result", required=True, help="where to write the part's JSON result")
    parser.add_argument("--cutler", required=True, help="CutLER tree")
    parser.add_argument("--vnext", required=True, help="VNext tree")
    parser.add_argument("--iterations", type=int, default=20, help="training iterations (train)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = PARTS[args.part](args)
    except Exception as exc:  # the result names what failed; the orchestrator reports it per part
        import traceback

        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    Path(args.result).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
