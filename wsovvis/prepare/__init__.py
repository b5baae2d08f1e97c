"""prepare: make the pinned CutLER (VideoCutLER) / VNext (detectron2 fork + SeqFormer) runtime importable and working.

Stage 0 of the pipeline. Installs a project-owned import hook into the runtime's site-packages (``hook.py``:
DeepLab/PointRend under ``detectron2.projects``, ``PIL.Image.LINEAR``, a CPU path for deformable attention,
VideoCutLER's folders on ``sys.path``) instead of editing upstream files, optionally compiles the CUDA op, and
finishes with a smoke check that builds the VideoCutLER predictor and the SeqFormer model and runs both on tiny
inputs (``smoke.py``, in a fresh interpreter). Running it twice changes nothing the second time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsovvis.cliutil import add_flag
from wsovvis.errors import RuntimeMissingError
from wsovvis.prepare.pins import checkout_commit, load_pins
from wsovvis.prepare.runtime import (
    CheckReport,
    RuntimeSources,
    default_site_packages,
    hook_files,
    stale_files,
    write_if_changed,
)

log = logging.getLogger(__name__)

__all__ = ["CheckReport", "PrepareReport", "RuntimeSources", "check", "prepare", "run_smoke"]

SMOKE_TIMEOUT_S = 1800
PARTS = ("videocutler", "seqformer")


@dataclass
class PrepareReport:
    site_packages: Path
    changed: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    smoke: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per part (``videocutler``, ``seqformer``): the report of ``wsovvis.prepare.smoke``."""


def run_smoke(
    site_packages: Path, part: str, *, probe_only: bool, python: str | None = None
) -> dict[str, Any]:
    """Run ``wsovvis.prepare.smoke`` for one part in a fresh ``python``, only the hook under ``site_packages`` active."""
    python = python or sys.executable
    project_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, WSOVVIS_RUNTIME_HOOK="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (project_root, env.get("PYTHONPATH", "")) if p)
    if probe_only:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    with tempfile.TemporaryDirectory(prefix="wsovvis-smoke-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [python, "-m", "wsovvis.prepare.smoke", "--site-dir", str(site_packages), "--part", part]
        cmd += ["--out", str(out)] + (["--probe"] if probe_only else [])
        log.info("%s %s: %s", "probing" if probe_only else "smoke check of", part, " ".join(cmd))
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S, check=False
        )
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeMissingError(
                f"the runtime smoke check of {part} failed to run with {python} (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-2000:]}"
            )
        return json.loads(out.read_text(encoding="utf-8"))


def prepare(
    sources: RuntimeSources,
    *,
    site_packages: Path | None = None,
    build_ops: bool = False,
    cuda_arch_list: str | None = None,
    smoke: bool = True,
    python: str | None = None,
) -> PrepareReport:
    """Install the hook (idempotently), optionally build the CUDA op, then smoke-check the runtime.

    Raises ``RuntimeMissingError`` when the smoke check fails, with the failing part named.
    """
    sources.validate()
    site_packages = Path(site_packages or default_site_packages())
    report = PrepareReport(site_packages)
    report.changed = write_if_changed(site_packages, hook_files(sources))
    if report.changed:
        log.info("installed into %s: %s", site_packages, ", ".join(report.changed))
    else:
        log.info("hook in %s already up to date: no change", site_packages)
    if build_ops:
        from wsovvis.prepare.ops import build_ops as compile_ops

        report.ops = compile_ops(sources, site_packages, cuda_arch_list)
        for line in report.ops:
            log.info("%s", line)
    if not smoke:
        return report
    for part in PARTS:
        result = run_smoke(site_packages, part, probe_only=False, python=python)
        report.smoke[part] = result
        outcome = result.get("smoke", {"ok": False, "error": f"not run: torch {result['probe']['torch']}"})
        if not outcome.get("ok"):
            raise RuntimeMissingError(
                f"smoke check of {part} failed: {outcome.get('error')}\n{outcome.get('traceback', '')}"
            )
        log.info("smoke %s: %s", part, {k: v for k, v in outcome.items() if k != "ok"})
        log.info("deformable attention calls in the %s forward: %s", part, result.get("msda_calls"))
        for name, cuda in result.get("msda_cuda", {}).items():
            if not cuda.get("ok"):
                raise RuntimeMissingError(
                    f"compiled deformable attention for {name} disagrees with PyTorch: {cuda}"
                )
        if "msda_fast_path_used" in result and not result["msda_fast_path_used"]:
            raise RuntimeMissingError(
                f"the {part} forward on the GPU did not use the compiled deformable attention"
            )
    return report


def check(
    sources: RuntimeSources, *, site_packages: Path | None = None, python: str | None = None
) -> CheckReport:
    """Report what is and is not in place; changes nothing (the import probes write no bytecode)."""
    default = default_site_packages()
    site_packages = Path(site_packages or default)
    report = CheckReport()
    missing = sources.missing_files()
    report.add(
        "sources", not missing, "missing " + ", ".join(missing) if missing else "all required files present"
    )
    if missing:
        return report
    for name, pin in load_pins().items():
        tree = getattr(sources, name.lower())
        head = checkout_commit(tree)
        report.add(
            f"{name} at pin",
            head == pin.commit,
            f"{tree} is at {pin.commit[:12]} ({pin.ref})"
            if head == pin.commit
            else f"{tree} is {'at ' + head[:12] if head else 'not a git checkout (pin not verifiable)'}, pin is "
            f"{pin.commit[:12]} ({pin.ref})",
            required=False,
        )
    stale = stale_files(site_packages, hook_files(sources))
    report.add(
        "hook files",
        not stale,
        f"missing or out of date in {site_packages}: {', '.join(stale)}"
        if stale
        else f"up to date in {site_packages}",
    )
    is_default = site_packages.resolve() == default.resolve()
    report.add(
        "active at start-up",
        is_default,
        f"{site_packages} is the site-packages of {sys.executable}"
        if is_default
        else f"{site_packages} is not this interpreter's site-packages: its .pth runs only there",
        required=False,
    )
    if stale:
        return report
    probes = {part: run_smoke(site_packages, part, probe_only=True, python=python)["probe"] for part in PARTS}
    first = probes[PARTS[0]]
    torch_info = first.get("torch", {})
    report.add("torch", torch_info.get("ok", False), torch_info.get("version") or torch_info.get("error", ""))
    if not torch_info.get("ok"):
        return report
    seen = set()
    for part, probe in probes.items():
        for name, result in probe["imports"].items():
            if name not in seen:
                seen.add(name)
                report.add(f"import {name}", result["ok"], result.get("file") or result.get("error", ""))
        patched = probe.get("msda_patched", {})
        report.add(
            f"{part} deformable attention patched",
            bool(patched),
            ", ".join(f"{mod} -> {ext or 'PyTorch only'}" for mod, ext in sorted(patched.items()))
            or "no op module patched",
        )
        compiled = sorted({ext for ext in patched.values() if ext})
        report.add(
            f"{part} compiled CUDA op",
            bool(compiled),
            ", ".join(compiled) if compiled else "none: CUDA tensors would use the PyTorch op",
            required=bool(torch_info.get("cuda_available")),
        )
    report.add("PIL.Image.LINEAR", first["pil_linear"], f"Pillow {first['PIL'].get('version')}")
    cv2_version = first.get("cv2", {}).get("version") or ""
    report.add(
        "opencv < 4.13",
        bool(cv2_version) and tuple(int(x) for x in cv2_version.split(".")[:2]) < (4, 13),
        f"cv2 {cv2_version or 'not importable'} (>= 4.13 segfaults in VideoCapture on camera-less machines)",
        required=False,
    )
    return report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="make the CutLER/VNext/detectron2 runtime importable and working (idempotent)",
        description=(
            "Install the project's import hook for the pinned CutLER, VNext and detectron2 v0.6 trees into this "
            "interpreter's site-packages, optionally compile the CUDA deformable-attention op, and smoke-check "
            "the VideoCutLER predictor and the SeqFormer model. --check only reports."
        ),
    )
    parser.add_argument("--cutler", required=True, help="root of the CutLER tree (third_party/CutLER)")
    parser.add_argument(
        "--vnext", required=True, help="root of the VNext tree (installed with pip install -e)"
    )
    parser.add_argument(
        "--detectron2", required=True, help="root of the detectron2 v0.6 tree (for its projects/)"
    )
    add_flag(
        parser, "--build_ops", action="store_true", help="compile the CUDA op (needs nvcc and CUDA torch)"
    )
    add_flag(
        parser, "--cuda_arch_list", default=None, help="TORCH_CUDA_ARCH_LIST for --build-ops, e.g. '8.0;8.6'"
    )
    parser.add_argument("--check", action="store_true", help="report what is in place, change nothing")
    add_flag(
        parser,
        "--site_packages",
        default=None,
        help="install here instead of this interpreter's site-packages",
    )
    add_flag(parser, "--no_smoke", action="store_true", help="skip the model build/forward smoke check")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    sources = RuntimeSources.from_dirs(args.cutler, args.vnext, args.detectron2)
    site_packages = Path(args.site_packages) if args.site_packages else None
    if args.check:
        report = check(sources, site_packages=site_packages)
        print("\n".join(report.lines()))
        print("runtime ready" if report.ok else "runtime NOT ready: run `wsovvis prepare` without --check")
        return 0 if report.ok else 1
    result = prepare(
        sources,
        site_packages=site_packages,
        build_ops=args.build_ops,
        cuda_arch_list=args.cuda_arch_list,
        smoke=not args.no_smoke,
    )
    print(f"changed: {', '.join(result.changed)}" if result.changed else "no change")
    for line in result.ops:
        print(line)
    for part, info in result.smoke.items():
        outcome = info["smoke"]
        print(f"smoke {part}: ok, {outcome.get('num_predictions')} predictions on tiny random frames")
    return 0
