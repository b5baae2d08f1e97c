"""Smoke check of the prepared runtime, run in a fresh interpreter so the installed hook is what is tested.

``python -m wsovvis.prepare.smoke --site-dir DIR --part videocutler|seqformer --out FILE [--probe]`` writes one
JSON object to FILE (upstream code prints to stdout freely, so stdout is not used for the report):

* ``probe``: versions and which imports work (what ``wsovvis prepare --check`` reports);
* ``smoke``: for ``videocutler``, the VideoCutLER predictor built from its class-agnostic config with random
  weights and run on two tiny random frames; for ``seqformer``, the SeqFormer model built from VNext's
  ``base_ytvis.yaml`` (one class) with random weights and run in inference on a tiny two-frame clip;
* ``msda_calls``: which deformable-attention path the forward pass took;
* ``msda_cuda``: with a GPU, the compiled op against the PyTorch reference on random inputs, and whether the
  forward pass took the compiled path.

The parent starts it with ``WSOVVIS_RUNTIME_HOOK=0`` so that only the hook under ``--site-dir`` is active.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

TINY = 64  # frame side for the forward passes: enough for the stride-32 features of R50


def activate(site_dir: str) -> Any:
    """Import and install the hook from ``site_dir``."""
    sys.path.insert(0, site_dir)
    import wsovvis_runtime

    if not Path(wsovvis_runtime.__file__).resolve().is_relative_to(Path(site_dir).resolve()):
        raise RuntimeError(f"wsovvis_runtime imported from {wsovvis_runtime.__file__}, not from {site_dir}")
    wsovvis_runtime.install()
    return wsovvis_runtime


def _try_import(name: str) -> dict[str, Any]:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # report every failure kind; the caller decides what is required
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "file": getattr(module, "__file__", None)}


PART_IMPORTS = {
    "videocutler": ("mask2former", "mask2former_video", "predictor"),
    "seqformer": ("pycocotools.ytvos", "detectron2.projects.seqformer"),
}
"""What each part imports. The two parts run in separate processes: VideoCutLER's ``mask2former_video`` and
SeqFormer both register the builtin YTVIS dataset names (``ytvis_2019_train``, ...) at import time, and detectron2's
catalog refuses the second registration."""


def probe(hook: Any, part: str) -> dict[str, Any]:
    result: dict[str, Any] = {"python": sys.version.split()[0]}
    try:
        import torch
    except ImportError as exc:
        result["torch"] = {"ok": False, "error": str(exc)}
        return result
    result["torch"] = {
        "ok": True,
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    for name in ("torchvision", "cv2", "numpy", "PIL", "timm"):
        mod = _try_import(name)
        if mod["ok"]:
            mod["version"] = getattr(sys.modules[name], "__version__", None)
        result[name] = mod
    from PIL import Image

    result["pil_linear"] = hasattr(Image, "LINEAR")
    imports = {}
    for name in (
        "detectron2",
        "detectron2.projects.deeplab",
        "detectron2.projects.point_rend",
        *PART_IMPORTS[part],
    ):
        imports[name] = _try_import(name)
    result["imports"] = imports
    if imports["detectron2"]["ok"]:
        result["detectron2_version"] = sys.modules["detectron2"].__version__
    result["msda_patched"] = dict(hook.MSDA_PATCHED)
    return result


def videocutler_smoke(sources: dict[str, str], device: str) -> dict[str, Any]:
    import numpy as np
    from detectron2.config import get_cfg
    from detectron2.projects.deeplab import add_deeplab_config
    from mask2former import add_maskformer2_config
    from mask2former_video import add_maskformer2_video_config
    from predictor import VideoPredictor

    config = (
        Path(sources["cutler"]) / "videocutler/configs/imagenet_video/video_mask2former_R50_cls_agnostic.yaml"
    )
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    add_maskformer2_video_config(cfg)
    cfg.merge_from_file(str(config))
    cfg.merge_from_list(["MODEL.WEIGHTS", "", "MODEL.DEVICE", device])
    cfg.INPUT.MIN_SIZE_TEST = TINY
    cfg.INPUT.MAX_SIZE_TEST = TINY
    cfg.freeze()
    predictor = VideoPredictor(cfg)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (TINY, TINY, 3), dtype=np.uint8) for _ in range(2)]
    predictions = predictor(frames)
    masks = predictions["pred_masks"]
    return {
        "ok": True,
        "config": str(config),
        "image_size": list(predictions["image_size"]),
        "num_predictions": len(predictions["pred_scores"]),
        "mask_shape": list(masks[0].shape) if len(masks) else [],
    }


def seqformer_smoke(sources: dict[str, str], device: str) -> dict[str, Any]:
    import torch
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from detectron2.projects.seqformer import add_seqformer_config

    config = Path(sources["vnext"]) / "projects/SeqFormer/configs/base_ytvis.yaml"
    cfg = get_cfg()
    add_seqformer_config(cfg)
    cfg.merge_from_file(str(config))
    cfg.merge_from_list(["MODEL.WEIGHTS", "", "MODEL.DEVICE", device, "MODEL.SeqFormer.NUM_CLASSES", "1"])
    # SeqFormer reads cfg.DATASETS.TEST[0]; an empty list fails at build time.
    cfg.DATASETS.TEST = ("ytvis_smoke",)
    cfg.freeze()
    model = build_model(cfg).eval()
    generator = torch.Generator().manual_seed(0)
    frames = [torch.randint(0, 256, (3, TINY, TINY), generator=generator).float() for _ in range(2)]
    batch = [{"image": frames, "file_names": ["0.jpg", "1.jpg"], "height": TINY, "width": TINY}]
    with torch.no_grad():
        output = model(batch)
    return {
        "ok": True,
        "config": str(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "output_keys": sorted(output) if isinstance(output, dict) else type(output).__name__,
        "num_predictions": len(output.get("pred_scores", [])) if isinstance(output, dict) else None,
    }


def msda_cuda_check(hook: Any) -> dict[str, Any]:
    """On a GPU: the compiled op of every patched module against the PyTorch reference."""
    import torch
    from wsovvis_runtime import msda

    results = {}
    shapes = torch.tensor([[8, 8], [4, 4]], dtype=torch.long, device="cuda")
    level_start = torch.cat((shapes.new_zeros((1,)), shapes.prod(1).cumsum(0)[:-1]))
    generator = torch.Generator(device="cuda").manual_seed(0)
    n, m, d, lq, p = 2, 2, 4, 5, 3
    s = int(shapes.prod(1).sum())
    value = torch.rand(n, s, m, d, device="cuda", generator=generator)
    loc = torch.rand(n, lq, m, 2, p, 2, device="cuda", generator=generator)
    weights = torch.rand(n, lq, m, 2, p, device="cuda", generator=generator)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    reference = msda.ms_deform_attn(value, shapes, loc, weights)
    for name in hook.MSDA_PATCHED:
        function = sys.modules[name].MSDeformAttnFunction
        if function.extension_module is None:
            results[name] = {"ok": False, "error": "no compiled extension importable"}
            continue
        compiled = function.compiled.apply(value, shapes, level_start, loc, weights, 64)
        torch.cuda.synchronize()
        err = float((compiled - reference).abs().max())
        results[name] = {
            "ok": err < 1e-4,
            "max_abs_diff": err,
            "extension": function.extension_module.__name__,
        }
    return results


SMOKES = {"videocutler": videocutler_smoke, "seqformer": seqformer_smoke}


def run(site_dir: str, part: str, probe_only: bool) -> dict[str, Any]:
    hook = activate(site_dir)
    report: dict[str, Any] = {"hook": hook.__file__, "probe": probe(hook, part)}
    if probe_only or not report["probe"]["torch"]["ok"]:
        return report
    sources = hook.installed_config()["sources"]
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    try:
        report["smoke"] = SMOKES[part](sources, device)
    except Exception as exc:  # the report names what failed; the parent turns it into an error
        report["smoke"] = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    report["msda_calls"] = dict(hook.MSDA_CALLS)
    if device == "cuda":
        report["msda_cuda"] = msda_cuda_check(hook)
        report["msda_fast_path_used"] = hook.MSDA_CALLS.get("cuda", 0) > 0
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site-dir", required=True, help="site-packages holding the wsovvis_runtime hook")
    parser.add_argument("--part", required=True, choices=sorted(SMOKES), help="which model to check")
    parser.add_argument("--out", required=True, help="where to write the JSON report")
    parser.add_argument("--probe", action="store_true", help="only report versions and imports")
    args = parser.parse_args(argv)
    os.environ.setdefault("CUDA_MODULE_LOADING", "LAZY")
    report = run(args.site_dir, args.part, args.probe)
    Path(args.out).write_text(json.dumps(report, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
