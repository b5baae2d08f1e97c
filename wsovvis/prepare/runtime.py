"""Install the runtime hook into a Python environment and check what is in place.

The hook is three project-owned files plus a ``.pth`` line in the environment's site-packages (see
``hook.py``); nothing in the upstream trees is edited. Writing is idempotent: a file whose content is already
right is left alone, so a second run reports no change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from wsovvis import storage
from wsovvis.errors import UsageError

log = logging.getLogger(__name__)

PACKAGE = "wsovvis_runtime"
PTH_NAME = f"{PACKAGE}.pth"
# .pth lines that start with "import" are executed by site.py at interpreter start-up.
PTH_LINE = 'import os; os.environ.get("WSOVVIS_RUNTIME_HOOK", "1") == "0" or __import__("wsovvis_runtime").install()\n'
HERE = Path(__file__).resolve().parent

CUTLER_VIDEO = "videocutler"
CUTLER_OPS = "videocutler/mask2former/modeling/pixel_decoder/ops"
SEQFORMER_DIR = "projects/SeqFormer/seqformer"
SEQFORMER_OPS = f"{SEQFORMER_DIR}/models/ops"
OPS_FUNC = "functions/ms_deform_attn_func.py"
YTVIS_API = "videocutler/mask2former_video/data_video/datasets/ytvis_api"

REQUIRED_FILES = {
    "cutler": (
        "videocutler/mask2former/__init__.py",
        "videocutler/mask2former_video/__init__.py",
        "videocutler/demo_video/predictor.py",
        "videocutler/configs/imagenet_video/video_mask2former_R50_cls_agnostic.yaml",
        f"{CUTLER_OPS}/{OPS_FUNC}",
        f"{YTVIS_API}/ytvos.py",
        f"{YTVIS_API}/ytvoseval.py",
    ),
    "vnext": (
        "setup.py",
        "detectron2/__init__.py",
        f"{SEQFORMER_DIR}/__init__.py",
        "projects/SeqFormer/configs/base_ytvis.yaml",
        f"{SEQFORMER_OPS}/{OPS_FUNC}",
    ),
    "detectron2": (
        "projects/DeepLab/deeplab/__init__.py",
        "projects/PointRend/point_rend/__init__.py",
    ),
}


@dataclass(frozen=True)
class RuntimeSources:
    """The three upstream trees, checked out (or exported) at the commits in ``third_party/pins.json``."""

    cutler: Path
    vnext: Path
    detectron2: Path

    @classmethod
    def from_dirs(
        cls, cutler: str | os.PathLike[str], vnext: str | os.PathLike[str], detectron2: str | os.PathLike[str]
    ) -> RuntimeSources:
        return cls(Path(cutler).resolve(), Path(vnext).resolve(), Path(detectron2).resolve())

    def missing_files(self) -> list[str]:
        """Files the hook relies on that are absent, as absolute paths."""
        missing = []
        for name, relatives in REQUIRED_FILES.items():
            root = getattr(self, name)
            missing += [str(root / rel) for rel in relatives if not (root / rel).is_file()]
        return missing

    def validate(self) -> None:
        missing = self.missing_files()
        if missing:
            raise UsageError(
                "the runtime sources are incomplete, missing: "
                + ", ".join(missing)
                + " (pass --cutler/--vnext/--detectron2 the roots of the trees pinned in third_party/pins.json)"
            )

    @property
    def msda_ops_dirs(self) -> dict[str, Path]:
        return {"cutler": self.cutler / CUTLER_OPS, "seqformer": self.vnext / SEQFORMER_OPS}


_C_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


def ops_source_digest(ops_dir: Path) -> str:
    """SHA-256 of an op's C++/CUDA sources with comments and blank lines removed.

    CutLER's and SeqFormer's copies differ only in their licence comments; equal digests mean one compiled
    extension serves both, different ones that they must not share the module name.
    """
    digest = hashlib.sha256()
    src = ops_dir / "src"
    for path in sorted(p for p in src.rglob("*") if p.suffix in {".h", ".cpp", ".cu", ".cuh"}):
        text = _C_COMMENT.sub("", path.read_text(encoding="utf-8", errors="replace"))
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        digest.update(path.relative_to(src).as_posix().encode() + b"\0" + "\n".join(lines).encode() + b"\0")
    return digest.hexdigest()


def extension_name(ops_dir: Path) -> str:
    """The project's name for a compiled deformable-attention op, distinct per source content."""
    return f"wsovvis_msda_{ops_source_digest(ops_dir)[:12]}"


def hook_config(sources: RuntimeSources) -> dict:
    """What ``runtime.json`` holds: the folders the hook puts on the import path, and the op modules it patches."""
    return {
        "sources": {
            "cutler": str(sources.cutler),
            "vnext": str(sources.vnext),
            "detectron2": str(sources.detectron2),
        },
        "sys_path": [str(sources.cutler / CUTLER_VIDEO), str(sources.cutler / CUTLER_VIDEO / "demo_video")],
        "detectron2_projects": {
            "deeplab": str(sources.detectron2 / "projects/DeepLab/deeplab"),
            "point_rend": str(sources.detectron2 / "projects/PointRend/point_rend"),
            "seqformer": str(sources.vnext / SEQFORMER_DIR),
        },
        "fallback_modules": {
            "pycocotools.ytvos": str(sources.cutler / YTVIS_API / "ytvos.py"),
            "pycocotools.ytvoseval": str(sources.cutler / YTVIS_API / "ytvoseval.py"),
        },
        "msda_ops": [
            {"name": name, "dir": str(ops_dir), "extension": extension_name(ops_dir)}
            for name, ops_dir in sorted(sources.msda_ops_dirs.items())
        ],
    }


def hook_files(sources: RuntimeSources) -> dict[str, bytes]:
    """The files to install, relative to site-packages, with their exact content."""
    config = json.dumps(hook_config(sources), indent=2, sort_keys=True) + "\n"
    return {
        PTH_NAME: PTH_LINE.encode(),
        f"{PACKAGE}/__init__.py": (HERE / "hook.py").read_bytes(),
        f"{PACKAGE}/msda.py": (HERE / "msda.py").read_bytes(),
        f"{PACKAGE}/runtime.json": config.encode(),
    }


def default_site_packages() -> Path:
    """The site-packages of the interpreter running this code (the runtime's, when run from its venv)."""
    return Path(sysconfig.get_paths()["purelib"])


def write_if_changed(root: Path, files: dict[str, bytes]) -> list[str]:
    """Write each file atomically unless it already has that content; returns the relative paths written."""
    changed = []
    for relative, content in sorted(files.items()):
        path = root / relative
        if path.is_file() and path.read_bytes() == content:
            continue
        storage.write_bytes(path, content)
        changed.append(relative)
    return changed


def stale_files(root: Path, files: dict[str, bytes]) -> list[str]:
    """Relative paths that are missing or differ from the expected content."""
    return [
        rel
        for rel, content in sorted(files.items())
        if not ((root / rel).is_file() and (root / rel).read_bytes() == content)
    ]


@dataclass(frozen=True)
class CheckItem:
    name: str
    ok: bool
    detail: str
    required: bool = True


@dataclass
class CheckReport:
    items: list[CheckItem] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str, required: bool = True) -> None:
        self.items.append(CheckItem(name, ok, detail, required))

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.items if item.required)

    def lines(self) -> list[str]:
        out = []
        for item in self.items:
            mark = "ok" if item.ok else ("MISSING" if item.required else "note")
            out.append(f"{mark:>7}  {item.name}: {item.detail}")
        return out
