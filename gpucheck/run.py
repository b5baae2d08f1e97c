"""``scripts/gpu-check.sh``: make the bundle (here), run the GPU check (there), or dry-run it on a CPU.

The check is a list of parts, each in its own interpreter under its own time limit, so that one hanging or
failing part costs only itself; a part that later ones need (the environment probe, installing the bundle,
building detectron2) stops the ones after it. ``summary.json`` and ``gpu-check.log`` go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gpucheck import audit, guard
from gpucheck import bundle as bundles
from gpucheck.packages import ROOT
from wsovvis.cliutil import positive_int
from wsovvis.errors import WsovvisError
from wsovvis.prepare.runtime import RuntimeSources

log = logging.getLogger(__name__)

DEFAULT_BUNDLE = ".gpu-bundle"
DEFAULT_BUDGET_S = 450
DRY_RUN_BUDGET_S = 3600
# A dry run compiles and trains on a few shared CPU cores: its part limits are this many times longer.
DRY_RUN_SLOWDOWN = 8
SUMMARY = "summary.json"
LOG = "gpu-check.log"
SITECUSTOMIZE = '''"""Written by gpucheck for the interpreters of one check: see gpucheck/guard.py."""
import os

from gpucheck import guard

guard.install(os.path.dirname(os.path.abspath(__file__)))
'''
PART_ORDER = ("env", "install", "detectron2", "ops", "msda", "maskgen", "train", "nccl", "smoke")
# Time limits per part (seconds); each is also cut to what is left of the whole check's budget.
LIMITS = {
    "env": 60,
    "install": 90,
    "detectron2": 300,
    "ops": 330,
    "msda": 90,
    "maskgen": 150,
    "train": 180,
    "nccl": 60,
    "smoke": 180,
    "audit": 60,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/gpu-check.sh",
        description=(
            "Check the CutLER/VNext runtime on a machine with one NVIDIA GPU in one go: build the deformable-"
            "attention op for its arch, compare it with the PyTorch op, run VideoCutLER and train a tiny SeqFormer "
            "on the GPU, and report frames/s, it/s and peak GPU memory. The machine needs no package registry: "
            "make the bundle first, here (--bundle DIR). See docs/dev/gpu-check.md."
        ),
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--bundle",
        metavar="DIR",
        help="gather the trimmed sources and the wheels into DIR, then stop (needs PyPI)",
    )
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="run every part that needs no GPU, on the CPU, with tiny inputs",
    )
    parser.add_argument(
        "--bundle-dir", default=DEFAULT_BUNDLE, help=f"the bundle to install from (default {DEFAULT_BUNDLE})"
    )
    parser.add_argument(
        "--out", help="where summary.json and gpu-check.log go (default $OUT, else gpu-check-out)"
    )
    parser.add_argument("--work", help="scratch folder (default: a new temporary folder, removed at the end)")
    parser.add_argument("--arch", help="CUDA arch list for the op, e.g. '9.0' (default: the GPU's own)")
    parser.add_argument(
        "--iterations", type=positive_int, help="SeqFormer training iterations (default 20; a dry run 2)"
    )
    parser.add_argument(
        "--budget",
        type=positive_int,
        help=f"seconds for the whole check (default {DEFAULT_BUDGET_S}; a dry run {DRY_RUN_BUDGET_S})",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=os.cpu_count() or 1, help="compile jobs (MAX_JOBS)"
    )
    parser.add_argument(
        "--cutler", help="CutLER tree for --bundle (default $WSOVVIS_CUTLER_DIR, else third_party)"
    )
    parser.add_argument(
        "--vnext", help="VNext tree for --bundle (default $WSOVVIS_VNEXT_DIR, else third_party)"
    )
    parser.add_argument(
        "--detectron2",
        help="detectron2 v0.6 tree for --bundle (default $WSOVVIS_DETECTRON2_DIR, else third_party)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    tree_flags = [f"--{name}" for name in ("cutler", "vnext", "detectron2") if getattr(args, name)]
    if tree_flags and not args.bundle:
        parser.error(
            f"{', '.join(tree_flags)} only go with --bundle (the check takes its sources from the bundle)"
        )
    if args.arch and (args.bundle or args.dry_run):
        parser.error("--arch only goes with a GPU run (not --bundle or --dry-run)")
    args.out = args.out or os.environ.get("OUT") or "gpu-check-out"
    args.budget = args.budget or (DRY_RUN_BUDGET_S if args.dry_run else DEFAULT_BUDGET_S)
    args.iterations = args.iterations or (2 if args.dry_run else 20)
    return args


@dataclass
class PartOutcome:
    status: str  # pass | fail | timeout | skipped
    seconds: float = 0.0
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "seconds": round(self.seconds, 1)}
        if self.reason:
            out["reason"] = self.reason
        if self.details:
            out["details"] = self.details
        return out


@dataclass
class Running:
    """A started part."""

    proc: subprocess.Popen
    handle: IO[str]
    began: float
    limit: float
    ended: float | None = None

    def watch(self) -> None:
        self.proc.wait()
        self.ended = time.monotonic()


class Check:
    """One run of the check: a scratch folder, the parts' outcomes, and the log they write."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dry_run = bool(args.dry_run)
        self.device = "cpu" if self.dry_run else "cuda"
        self.python = sys.executable
        self.bundle = Path(args.bundle_dir).resolve()
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self._own_work = not args.work
        self.work = Path(args.work or tempfile.mkdtemp(prefix="wsovvis-gpucheck-")).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.site = self.work / "site"
        self.src = self.work / "src"
        self.logs = self.work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.imports = self.work / "imports"
        self.allowed = self.work / "allowed.json"
        self.started = time.monotonic()
        self.deadline = self.started + args.budget
        self.outcomes: dict[str, PartOutcome] = {}
        self.environment: dict[str, Any] = {}
        self.cuda_home: str | None = None
        self.arch = args.arch
        self.log_file = (self.out / LOG).open("w", encoding="utf-8")

    @property
    def sources(self) -> RuntimeSources:
        return RuntimeSources.from_dirs(self.src / "CutLER", self.src / "VNext", self.src / "detectron2")

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        paths = [self.work / "boot", self.site, self.src / "VNext", ROOT]
        env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [os.environ.get("PYTHONPATH")])])
        env[guard.SITE_ENV] = str(self.site)
        env["WSOVVIS_RUNTIME_HOOK"] = "0"  # see guard.install: only the check's own hook runs
        env["PYTHONUNBUFFERED"] = "1"
        # The interpreter's own bin folder first: pip-installed ninja lives there, and torch builds with it.
        env["PATH"] = os.pathsep.join([os.path.dirname(self.python), env.get("PATH", "")])
        # Sacred may import GitPython, which refuses to import where no git executable exists unless told.
        env.setdefault("GIT_PYTHON_REFRESH", "quiet")
        env["MAX_JOBS"] = str(self.args.jobs)
        if self.cuda_home:
            env["CUDA_HOME"] = self.cuda_home
        if self.dry_run:
            env[guard.IMPORT_LOG_ENV] = str(self.imports)
            env[guard.ALLOWED_ENV] = str(self.allowed)
        env.update(extra)
        return env

    def say(self, text: str) -> None:
        stamp = f"[{time.monotonic() - self.started:6.1f}s]"
        print(f"{stamp} {text}", flush=True)
        self.log_file.write(f"{stamp} {text}\n")
        self.log_file.flush()

    # ----------------------------------------------------------------------------------------- running parts

    def start(self, name: str, cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None):
        limit = LIMITS[name] * (DRY_RUN_SLOWDOWN if self.dry_run else 1)
        limit = min(limit, max(1.0, self.deadline - time.monotonic()))
        self.say(f"{name}: starting (limit {limit:.0f} s)")
        handle = (self.logs / f"{name}.log").open("w", encoding="utf-8")
        handle.write(f"$ {' '.join(cmd)}\n")
        handle.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env or self.env(),
            cwd=cwd,
            start_new_session=True,
        )
        running = Running(proc, handle, time.monotonic(), limit)
        # Notes when the part ends, so that a part waited for after another one still gets its own duration.
        threading.Thread(target=running.watch, daemon=True).start()
        return running

    def finish(self, name: str, running: Running, result_file: Path | None = None) -> PartOutcome:
        proc, handle, began, limit = running.proc, running.handle, running.began, running.limit
        try:
            returncode = proc.wait(timeout=max(0.0, began + limit - time.monotonic()))
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
            timed_out = True
        handle.close()
        seconds = (running.ended or time.monotonic()) - began
        text = (self.logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        self.log_file.write(f"\n===== {name} (exit {returncode}, {seconds:.1f} s) =====\n{text}\n")
        details: dict[str, Any] = {}
        if result_file and result_file.is_file():
            details = json.loads(result_file.read_text(encoding="utf-8"))
        if timed_out:
            outcome = PartOutcome("timeout", seconds, f"stopped after its limit of {limit:.0f} s", details)
        elif returncode == 0 and details.get("ok", True):
            outcome = PartOutcome("pass", seconds, details=details)
        else:
            tail = " | ".join(line for line in text.strip().splitlines()[-6:])
            reason = details.get("error") or f"exit {returncode}: {tail[-1500:]}"
            outcome = PartOutcome("fail", seconds, reason, details)
        self.outcomes[name] = outcome
        self.say(
            f"{name}: {outcome.status.upper()} in {seconds:.1f} s"
            + (f": {outcome.reason}" if outcome.reason else "")
        )
        return outcome

    def run(self, name: str, cmd: list[str], **kwargs: Any) -> PartOutcome:
        result_file = kwargs.pop("result_file", None)
        return self.finish(name, self.start(name, cmd, **kwargs), result_file)

    def skip(self, name: str, reason: str) -> None:
        self.outcomes[name] = PartOutcome("skipped", reason=reason)
        self.say(f"{name}: skipped: {reason}")

    def part(self, name: str, *extra: str) -> PartOutcome:
        """One of ``gpucheck.parts``'s measuring parts."""
        result = self.work / f"{name}.json"
        cmd = [
            self.python,
            "-m",
            "gpucheck.parts",
            name,
            "--work",
            str(self.work),
            "--device",
            self.device,
        ]
        cmd += [
            "--result",
            str(result),
            "--cutler",
            str(self.src / "CutLER"),
            "--vnext",
            str(self.src / "VNext"),
        ]
        return self.run(name, [*cmd, *extra], result_file=result)

    def prepare_cmd(self, *extra: str) -> list[str]:
        sources = self.sources
        return [
            self.python,
            "-m",
            "wsovvis",
            "prepare",
            "--cutler",
            str(sources.cutler),
            "--vnext",
            str(sources.vnext),
            "--detectron2",
            str(sources.detectron2),
            "--site-packages",
            str(self.site),
            *extra,
        ]

    # ------------------------------------------------------------------------------------------------ steps

    def step_env(self) -> bool:
        result = self.work / "env.json"
        cmd = [
            self.python,
            "-m",
            "gpucheck.parts",
            "env",
            "--work",
            str(self.work),
            "--device",
            self.device,
        ]
        cmd += ["--result", str(result), "--cutler", "-", "--vnext", "-"]
        outcome = self.run("env", cmd, env=self.env(PYTHONPATH=str(ROOT)), result_file=result)
        self.environment = outcome.details
        self.cuda_home = self.environment.get("cuda_home_for_build")
        if not self.dry_run and not self.arch:
            self.arch = self.environment.get("capability")
        return outcome.status == "pass"

    def step_install(self) -> bool:
        began = time.monotonic()
        problems = bundles.verify_bundle(self.bundle)
        if problems:
            self.outcomes["install"] = PartOutcome("fail", time.monotonic() - began, "; ".join(problems))
            self.say(f"install: FAIL: the bundle {self.bundle} is incomplete: {'; '.join(problems)}")
            return False
        shutil.copytree(self.bundle / "src", self.src, dirs_exist_ok=True)
        boot = self.work / "boot"
        boot.mkdir(exist_ok=True)
        (boot / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        self.imports.mkdir(exist_ok=True)
        if self.dry_run:
            own_roots = [str(self.work), str(ROOT)]
            allowed = sorted(audit.allowed_distributions())
            self.allowed.write_text(
                json.dumps({"distributions": allowed, "own_roots": own_roots}), encoding="utf-8"
            )
        wheels = sorted(str(p) for p in (self.bundle / "wheels").glob("*.whl"))
        pip = [self.python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile"]
        pip += ["--disable-pip-version-check"]
        own = f"{sys.version_info.major}.{sys.version_info.minor}"
        if own == bundles.TARGET_PYTHON:
            outcome = self.run("install", [*pip, "--target", str(self.site), *wheels], env=dict(os.environ))
            return outcome.status == "pass"
        # Dry run on another Python: check that every wheel installs for the target interpreter, then use the
        # pure-Python ones here; binary ones come from this environment (the same versions, see docs/dev/gpu-check.md).
        target = [arg for p in bundles.TARGET_PLATFORMS for arg in ("--platform", p)]
        target += ["--python-version", bundles.TARGET_PYTHON, "--implementation", "cp", "--only-binary=:all:"]
        throwaway = self.work / "throwaway-site"
        pure = [w for w in wheels if w.endswith("-none-any.whl")]
        script = (
            f"{' '.join(pip)} --target {throwaway} {' '.join(target)} {' '.join(wheels)} && "
            f"{' '.join(pip)} --target {self.site} {' '.join(pure)}"
        )
        outcome = self.run("install", ["bash", "-c", script], env=dict(os.environ))
        outcome.details = {
            "target_check": f"all {len(wheels)} wheels installed for Python {bundles.TARGET_PYTHON} into {throwaway}",
            "taken_from_this_environment": sorted(Path(w).name for w in wheels if w not in pure),
        }
        return outcome.status == "pass"

    def detectron2_cmd(self) -> list[str]:
        verify = "import detectron2, detectron2._C; print('detectron2', detectron2.__version__, detectron2.__file__)"
        build = f'{self.python} setup.py build_ext --inplace && {self.python} -c "{verify}"'
        return ["bash", "-c", build]

    def step_builds(self) -> bool:
        """detectron2's C++ extension (CPU-only: nothing the check runs uses its CUDA ops) and, on a GPU machine,
        the deformable-attention op for the GPU's arch, side by side."""
        d2_env = self.env(CUDA_VISIBLE_DEVICES="", FORCE_CUDA="0")
        d2 = self.start("detectron2", self.detectron2_cmd(), env=d2_env, cwd=self.src / "VNext")
        if self.dry_run:
            ops = self.start("ops", self.prepare_cmd("--no-smoke"))
        else:
            ops = self.start(
                "ops", self.prepare_cmd("--build-ops", "--cuda-arch-list", self.arch or "", "--no-smoke")
            )
        ok = self.finish("detectron2", d2).status == "pass"
        self.finish("ops", ops)
        return ok

    def step_audit(self) -> None:
        result = self.work / "audit.json"
        cmd = [self.python, "-m", "gpucheck.audit", "--imports", str(self.imports)]
        cmd += ["--allowed", str(self.allowed), "--result", str(result)]
        env = self.env(**{guard.IMPORT_LOG_ENV: "", guard.ALLOWED_ENV: ""})
        self.run("audit", cmd, env=env, result_file=result)

    def execute(self) -> None:
        self.say(
            f"gpu-check {'dry run on the CPU' if self.dry_run else 'on the GPU'}: work {self.work}, out {self.out}"
        )
        prerequisites = (
            ("env", self.step_env),
            ("install", self.step_install),
            ("detectron2", self.step_builds),
        )
        for name, step in prerequisites:
            if not step():
                for rest in PART_ORDER + (("audit",) if self.dry_run else ()):
                    if rest not in self.outcomes:
                        self.skip(rest, f"prerequisite {name} failed")
                return
        self.part("msda")
        self.part("maskgen")
        self.part("train", "--iterations", str(self.args.iterations))
        self.part("nccl")
        # Without --build-ops: the hook finds the op built above in the site folder; a failed build is not retried.
        self.run("smoke", self.prepare_cmd())
        if self.dry_run:
            self.step_audit()

    # ---------------------------------------------------------------------------------------------- summary

    def figures(self) -> dict[str, Any]:
        details = {name: outcome.details for name, outcome in self.outcomes.items()}
        figures: dict[str, Any] = {}
        cases = details.get("msda", {}).get("cases", [])
        if cases:
            figures["msda_forward_max_abs_diff"] = max(
                c["forward_max_abs_diff"] for c in cases if c["dtype"] == "float32"
            )
            figures["msda_backward_max_abs_diff"] = max(
                v for c in cases if c["dtype"] == "float32" for v in c["backward_max_abs_diff"].values()
            )
        timing = details.get("msda", {}).get("timing")
        if timing:
            figures["msda_fwd_bwd_ms_compiled_vs_pytorch"] = [timing["candidate_ms"], timing["pytorch_ms"]]
        maskgen = details.get("maskgen", {})
        for key in ("maskgen_frames_per_s_model", "maskgen_frames_per_s_end_to_end", "msda_path_taken"):
            if key in maskgen:
                figures[key if key.startswith("maskgen") else f"maskgen_{key}"] = maskgen[key]
        if "train_it_per_s" in details.get("train", {}):
            figures["train_it_per_s"] = details["train"]["train_it_per_s"]
        peaks = {
            name: d["peak_gpu_mem_allocated_mib"]
            for name, d in details.items()
            if "peak_gpu_mem_allocated_mib" in d
        }
        if peaks:
            figures["peak_gpu_mem_allocated_mib"] = peaks
        return figures

    def summary(self) -> dict[str, Any]:
        gpu_only = {"msda", "maskgen", "train", "nccl"}
        statuses = {name: outcome.status for name, outcome in self.outcomes.items()}
        ok = bool(statuses) and all(status == "pass" for status in statuses.values())
        return {
            "mode": "dry-run" if self.dry_run else "gpu",
            "ok": ok,
            "seconds": round(time.monotonic() - self.started, 1),
            "budget_s": self.args.budget,
            "arch": self.arch,
            "environment": self.environment,
            "figures": self.figures(),
            "parts": {name: outcome.to_json() for name, outcome in self.outcomes.items()},
            "note": "dry run: the GPU parts ran on the CPU with tiny inputs; their figures are not GPU figures"
            if self.dry_run
            else f"parts {', '.join(sorted(gpu_only))} ran on {self.environment.get('gpu', 'the GPU')}",
        }

    def close(self) -> dict[str, Any]:
        summary = self.summary()
        (self.out / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        self.say("summary: " + ", ".join(f"{n} {o.status}" for n, o in self.outcomes.items()))
        for key, value in summary["figures"].items():
            self.say(f"  {key}: {value}")
        self.say(f"{'PASS' if summary['ok'] else 'FAIL'} in {summary['seconds']} s; {self.out / SUMMARY}")
        self.log_file.close()
        if self._own_work:
            shutil.rmtree(self.work, ignore_errors=True)
        return summary


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        if args.bundle:
            sources = (
                RuntimeSources.from_dirs(args.cutler, args.vnext, args.detectron2)
                if args.cutler and args.vnext and args.detectron2
                else bundles.default_sources()
            )
            manifest = bundles.make_bundle(Path(args.bundle), sources)
            print(
                f"bundle {args.bundle}: {manifest['total_bytes'] / 2**20:.1f} MiB, "
                f"{sum(len(s['files']) for s in manifest['sources'].values())} source files, "
                f"{len(manifest['wheels'])} wheels; manifest {Path(args.bundle) / bundles.MANIFEST}"
            )
            return 0
        bundles.load_manifest(Path(args.bundle_dir))
        check = Check(args)
        try:
            check.execute()
        finally:
            summary = check.close()
        return 0 if summary["ok"] else 1
    except WsovvisError as exc:
        print(f"gpu-check: {exc}", file=sys.stderr)
        return exc.exit_code
