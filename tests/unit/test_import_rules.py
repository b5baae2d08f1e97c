"""Import rules: component files import only stdlib and kfp at module level; wsovvis never imports kfp, nor the
application layer above it (the pipeline and the components, under their checkout or their installed names)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPONENT_FILES = sorted((ROOT / "components").glob("*/component.py"))
# The one project module a component may import at module level: the image names, defined once, stdlib-only.
ALLOWED_PROJECT_MODULES = {"wsovvis.images"}


def _module_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _allowed(module: str) -> bool:
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or top == "kfp" or module in ALLOWED_PROJECT_MODULES


@pytest.mark.parametrize("path", COMPONENT_FILES, ids=lambda p: p.parent.name)
def test_component_module_level_imports_are_stdlib_and_kfp_only(path: Path) -> None:
    offending = [m for m in _module_level_imports(path) if not _allowed(m)]
    assert not offending, f"{path}: move these imports into the component body: {offending}"


def test_image_names_module_is_stdlib_only() -> None:
    imports = _module_level_imports(ROOT / "wsovvis" / "images.py")
    assert all(m.split(".")[0] in sys.stdlib_module_names or m in ("wsovvis", "__future__") for m in imports)


# Above the library: what no module under wsovvis/ may import, anywhere in it (a function body included).
APPLICATION_LAYER = ("pipelines", "components", "wsovvis_pipelines")


def _wsovvis_imports() -> list[tuple[str, str]]:
    """(file, imported module) for every import statement of every module under wsovvis/."""
    found = []
    for path in sorted((ROOT / "wsovvis").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            found += [(str(path.relative_to(ROOT)), name) for name in names]
    return found


def test_no_wsovvis_module_imports_kfp() -> None:
    offenders = [f"{path}: {name}" for path, name in _wsovvis_imports() if name.split(".")[0] == "kfp"]
    assert not offenders


def test_no_wsovvis_module_imports_the_pipeline_or_the_components() -> None:
    offenders = [
        f"{path}: {name}" for path, name in _wsovvis_imports() if name.split(".")[0] in APPLICATION_LAYER
    ]
    assert not offenders, f"the library imports the application layer above it: {offenders}"


def test_importing_every_wsovvis_module_and_building_the_cli_loads_no_kfp_nor_the_application_layer() -> None:
    code = (
        "import importlib, pkgutil, sys, wsovvis, wsovvis.cli\n"
        "wsovvis.cli.build_parser()\n"
        "for m in pkgutil.walk_packages(wsovvis.__path__, 'wsovvis.'):\n"
        "    if m.name.endswith('__main__'):\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except ImportError as exc:\n"
        "        if 'torch' not in str(exc) and 'cv2' not in str(exc):\n"
        "            raise\n"
        f"print(sorted(k for k in sys.modules if k.split('.')[0] in {('kfp', *APPLICATION_LAYER)!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
