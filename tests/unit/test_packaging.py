"""What an install of the project adds: the wheel, installed into a scratch folder, adds only wsovvis-prefixed
top-level names (the library ``wsovvis``, and ``wsovvis_pipelines``: the repository's pipelines/ with components/
inside it), its dist-info and the ``wsovvis`` console script; every package folder of the checkout is in it; and the
installed command compiles the pipeline without a top-level ``pipelines`` or ``components``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from (the tools and runtime Dockerfiles copy the same into their build).
SOURCES = ("pyproject.toml", "README.md", "wsovvis", "components", "pipelines")
# checkout folder -> where its modules are installed
INSTALLED_AS = {
    "wsovvis": "wsovvis",
    "pipelines": "wsovvis_pipelines",
    "components": "wsovvis_pipelines/components",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder the project's wheel was installed into (``pip install --no-deps --target``)."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (no build isolation here)")
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"  # a copy: the build writes build/ and *.egg-info beside pyproject.toml
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    build = [
        *pip,
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        str(tmp / "dist"),
        str(source),
    ]
    subprocess.run(build, check=True, capture_output=True, text=True)
    (wheel,) = (tmp / "dist").glob("wsovvis-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(tmp / "site"), str(wheel)], check=True
    )
    return tmp / "site"


def test_an_install_adds_no_generic_top_level_name(site: Path) -> None:
    added = sorted(p.name for p in site.iterdir())
    assert [n for n in added if not n.startswith("wsovvis") and n != "bin"] == [], added
    assert {"wsovvis", "wsovvis_pipelines"} <= set(added)
    assert sorted(p.name for p in (site / "bin").iterdir()) == ["wsovvis"]


def test_every_package_folder_of_the_checkout_is_installed(site: Path) -> None:
    """pyproject.toml lists the packages (package-dir renames two folders): a folder missing there fails here."""
    for folder, installed in INSTALLED_AS.items():
        for module in sorted((ROOT / folder).rglob("*.py")):
            rel = module.relative_to(ROOT / folder)
            if "tests" in rel.parts:
                continue  # the components' tests stay in the checkout
            assert (site / installed / rel).is_file(), (
                f"{folder}/{rel} is not installed (pyproject.toml packages)"
            )
    assert not list(site.glob("wsovvis_pipelines/components/*/tests"))


def test_the_installed_command_runs_the_pipeline_commands_without_generic_packages(
    site: Path, tmp_path: Path
) -> None:
    pytest.importorskip("kfp", reason="compiling the pipeline needs kfp")
    code = (
        "import sys\n"
        "from wsovvis_pipelines.cli import main\n"
        f"assert main(['pipeline', 'compile', '--out', {str(tmp_path / 'spec.yaml')!r}]) == 0\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pipelines', 'components'}))\n"
        "print(sys.modules['wsovvis_pipelines.components.prepare.component'].__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded, component_file = out.stdout.splitlines()[-2:]
    assert loaded == "[]"
    assert Path(component_file).is_relative_to(site)
    assert (tmp_path / "spec.yaml").stat().st_size > 1000
    script = subprocess.run(
        [str(site / "bin" / "wsovvis"), "--help"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert script.returncode == 0, script.stderr
    assert {"pipeline", "demo", "evaluate"} <= set(script.stdout.split())
