"""scripts/gpu-check.sh without a GPU or network: its argument handling, the bundle's trimming and verification, and
the import audit of the dry run."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpucheck import audit, bundle, guard, packages, run

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"


def gpu_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, **(env or {})},
        timeout=60,
        check=False,
    )


def test_help_names_the_three_modes() -> None:
    out = gpu_check("--help")
    assert out.returncode == 0, out.stderr
    for flag in ("--bundle", "--dry-run", "--bundle-dir", "--out", "--budget"):
        assert flag in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bundle", "x", "--dry-run"], "not allowed with"),
        (["--cutler", "somewhere"], "--cutler only go with --bundle"),
        (["--dry-run", "--arch", "9.0"], "--arch only goes with a GPU run"),
        (["--iterations", "0"], "not a positive integer"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2_and_say_why(args: list[str], message: str) -> None:
    out = gpu_check(*args)
    assert out.returncode == 2
    assert message in out.stderr


def test_a_run_without_a_bundle_says_how_to_make_one(tmp_path: Path) -> None:
    out = gpu_check("--bundle-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"))
    assert out.returncode == 2
    assert f"{tmp_path / 'nothing' / 'manifest.json'} does not exist" in out.stderr
    assert "--bundle" in out.stderr


def test_out_defaults_to_the_device_tools_out_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUT", "/somewhere/out")
    assert run.parse_args([]).out == "/somewhere/out"
    assert run.parse_args(["--out", "mine"]).out == "mine"
    monkeypatch.delenv("OUT")
    assert run.parse_args([]).out == "gpu-check-out"


def test_a_dry_run_gets_a_longer_budget_and_fewer_iterations_than_the_gpu_run() -> None:
    gpu, dry = run.parse_args([]), run.parse_args(["--dry-run"])
    assert (gpu.budget, gpu.iterations) == (run.DEFAULT_BUDGET_S, 20)
    assert (dry.budget, dry.iterations) == (run.DRY_RUN_BUDGET_S, 2)
    assert run.parse_args(["--budget", "300", "--iterations", "5"]).budget == 300


def write(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_trimming_keeps_code_and_configs_and_drops_media(tmp_path: Path) -> None:
    for name in (
        "a/b.py",
        "a/c.yaml",
        "a/ops/src/k.cu",
        "a/ops/src/k.h",
        "a/demo.gif",
        "a/x.jpg",
        "LICENSE",
        "b/d.py",
    ):
        write(tmp_path / name)
    chosen = bundle.selected_files(tmp_path, bundle.TreeSelection(("a",), ("LICENSE", "NOTICE")))
    assert chosen == ["LICENSE", "a/b.py", "a/c.yaml", "a/ops/src/k.cu", "a/ops/src/k.h"]


def test_trimming_names_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(bundle.BundleError, match="projects/SeqFormer is missing"):
        bundle.selected_files(tmp_path, bundle.TreeSelection(("projects/SeqFormer",), ()))


def fake_bundle(root: Path) -> Path:
    """A bundle with every required source file and one wheel per wanted requirement, and its manifest."""
    from wsovvis.prepare.runtime import REQUIRED_FILES

    sources: dict[str, dict] = {}
    for tree, attr in bundle.TREE_ATTRS.items():
        files = {}
        for rel in REQUIRED_FILES[attr]:
            write(root / "src" / tree / rel, f"# {rel}\n")
            files[rel] = (root / "src" / tree / rel).stat().st_size
        sources[tree] = {"files": files}
    wheels = {}
    for name, version in packages.bundle_wheels().items():
        wheel = root / "wheels" / f"{name}-{version}-py3-none-any.whl"
        write(wheel, name)
        wheels[wheel.name] = {"requirement": f"{name}=={version}", "sha256": bundle._sha256(wheel)}
    (root / bundle.MANIFEST).write_text(json.dumps({"sources": sources, "wheels": wheels}))
    return root


def test_a_complete_bundle_verifies(tmp_path: Path) -> None:
    assert bundle.verify_bundle(fake_bundle(tmp_path / "b")) == []


def test_verification_names_what_is_missing_or_changed(tmp_path: Path) -> None:
    root = fake_bundle(tmp_path / "b")
    (root / "src" / "VNext" / "setup.py").unlink()
    write(
        root / "src" / "CutLER" / "videocutler/demo_video/predictor.py", "changed, and longer than before\n"
    )
    sacred = next((root / "wheels").glob("sacred-*.whl"))
    sacred.unlink()
    problems = "\n".join(bundle.verify_bundle(root))
    assert f"{root / 'src' / 'VNext' / 'setup.py'} is missing" in problems
    assert "predictor.py is 32 bytes, the manifest says" in problems
    assert f"{sacred} is missing" in problems


def test_verification_wants_a_wheel_for_every_requirement(tmp_path: Path) -> None:
    root = fake_bundle(tmp_path / "b")
    manifest = json.loads((root / bundle.MANIFEST).read_text())
    dropped = next(name for name in manifest["wheels"] if name.startswith("pycocotools-"))
    del manifest["wheels"][dropped]
    (root / bundle.MANIFEST).write_text(json.dumps(manifest))
    assert any("no wheel for pycocotools==" in p for p in bundle.verify_bundle(root))


def test_the_bundle_brings_each_declared_requirement_the_gpu_machine_lacks_at_its_locked_version() -> None:
    wheels = packages.bundle_wheels()
    lock = packages.Lock.read()
    # pyproject's dependencies (msgspec, minio, pycocotools), its train extra (sacred), the upstream trees' needs
    # (fvcore, omegaconf), and what those require in turn (GitPython -> gitdb -> smmap, minio -> pycryptodome)
    assert {
        "msgspec",
        "minio",
        "pycocotools",
        "sacred",
        "fvcore",
        "omegaconf",
        "smmap",
        "pycryptodome",
    } <= set(wheels)
    assert wheels == {name: lock.versions[name] for name in wheels}
    # nothing the GPU machine has, except what it has in a version that does not suit
    assert set(packages.SHADOWED) <= packages.DEVICE_PACKAGES
    assert set(wheels) & packages.DEVICE_PACKAGES == set(packages.SHADOWED)
    assert not {"torch", "numpy", "pyyaml", "kfp", "kubernetes"} & set(wheels)


def write_declarations(root: Path, dependencies: list[str], lock: str) -> Path:
    write(
        root / "pyproject.toml",
        f"[project]\ndependencies = {json.dumps(dependencies)}\n"
        '[project.optional-dependencies]\ntrain = ["sacred==0.8.7"]\npipeline = ["kfp==2.17.*"]\n',
    )
    write(root / "requirements.in", "# the trees' needs\nfvcore==0.1.5  # a comment\n-c constraints.txt\n")
    write(root / "requirements.lock", lock)
    return root


LOCK = """# This file was autogenerated by uv via the following command:
#    uv pip compile ...
fvcore==0.1.5 \\
    --hash=sha256:00
    # via -r requirements.in
gitpython==3.2.1 \\
    --hash=sha256:00
    # via sacred
kfp==2.17.0 \\
    --hash=sha256:00
    # via wsovvis (pyproject.toml)
new-dep==1.0 ; python_version >= "3.10" \\
    --hash=sha256:00
    # via wsovvis (pyproject.toml)
numpy==2.2.6 \\
    --hash=sha256:00
    # via
    #   fvcore
    #   new-dep
sacred==0.8.7 \\
    --hash=sha256:00
    # via wsovvis (pyproject.toml)
yacs==0.1.8 \\
    --hash=sha256:00
    # via
    #   fvcore
    #   new-dep
"""


def test_a_new_declared_dependency_enters_the_bundle_with_what_it_requires(tmp_path: Path) -> None:
    root = write_declarations(tmp_path, ["numpy>=1.24", "New_Dep>=1"], LOCK)
    needs = packages.declared(root / "pyproject.toml", root / "requirements.in")
    assert needs == {
        "numpy": "pyproject.toml dependencies",
        "new-dep": "pyproject.toml dependencies",
        "sacred": "pyproject.toml extra train",
        "fvcore": "requirements.in",
    }
    wheels = packages.bundle_wheels(needs, packages.Lock.read(root / "requirements.lock"))
    # numpy is on the GPU machine; kfp is declared only by an extra the check does not run
    assert wheels == {
        "fvcore": "0.1.5",
        "gitpython": "3.2.1",
        "new-dep": "1.0",
        "sacred": "0.8.7",
        "yacs": "0.1.8",
    }


def test_a_declared_dependency_the_lock_lacks_is_named_with_where_it_is_declared(tmp_path: Path) -> None:
    root = write_declarations(tmp_path, ["numpy>=1.24", "brand-new>=1"], LOCK)
    needs = packages.declared(root / "pyproject.toml", root / "requirements.in")
    with pytest.raises(
        packages.PackageListError, match=r"brand-new \(pyproject.toml dependencies\); re-lock"
    ):
        packages.bundle_wheels(needs, packages.Lock.read(root / "requirements.lock"))


def test_an_extra_the_check_needs_must_exist(tmp_path: Path) -> None:
    root = write_declarations(tmp_path, [], LOCK)
    with pytest.raises(packages.PackageListError, match="no extra 'gpu'"):
        packages.declared(root / "pyproject.toml", root / "requirements.in", extras=("gpu",))


# The packages the bundle's upstream sources provide (VideoCutLER's demo_video/predictor.py among them), and the
# runtime hook `wsovvis prepare` writes into the site folder: on the check's path there, from no distribution.
BUNDLED = {"detectron2", "mask2former", "mask2former_video", "predictor", "wsovvis_runtime"}
FIRST_PARTY = {"gpucheck", "wsovvis", "components", "pipelines"}


def _module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported module, whether at module level) for every import statement of ``path``."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = ".".join(package[: len(package) - child.level + 1] + [child.module or ""]).strip(".")
                base = base if child.level else child.module or ""
                found.append((base, top))
                found.extend((f"{base}.{alias.name}", top) for alias in child.names)
            else:
                nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef)
                visit(child, top and not nested)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


def test_every_module_the_check_runs_imports_only_what_the_gpu_machine_or_the_bundle_has() -> None:
    """The GPU check runs gpucheck's modules (every import in them: the check calls them all), ``wsovvis prepare``,
    and the project modules those import; importing a module runs its module-level imports, and each of its
    functions may run the rest. Every distribution so reached must be on the GPU machine or in the bundle: one
    that is neither fails there at its first import (as msgspec did)."""
    roots = [
        p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".") for p in ROOT.glob("gpucheck/*.py")
    ]
    roots += ["wsovvis.__main__", "wsovvis.cli"]
    roots += [f"wsovvis.prepare.{p.stem}" for p in ROOT.glob("wsovvis/prepare/*.py")]
    seen: set[str] = set()
    third_party: dict[str, set[str]] = {}
    while roots:
        module = roots.pop()
        path = _module_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        parts = module.split(".")
        roots += [".".join(parts[:i]) for i in range(1, len(parts))]
        for name, top in _imports(path, module):
            first = name.split(".")[0]
            if first in FIRST_PARTY:
                if top or module.startswith("gpucheck"):
                    roots.append(name)
            elif first not in sys.stdlib_module_names and first not in BUNDLED:
                third_party.setdefault(first, set()).add(module)
    assert {"wsovvis.storage", "wsovvis.maskgen.videocutler", "wsovvis.train.harness"} <= seen
    distributions = importlib.metadata.packages_distributions()
    allowed = packages.DEVICE_PACKAGES | set(packages.bundle_wheels())
    problems = []
    for name, importers in sorted(third_party.items()):
        provided = {guard.normalize(d) for d in distributions.get(name, [])}
        if not provided:
            problems.append(
                f"{name} (imported by {', '.join(sorted(importers))}) is not installed here to check"
            )
        elif not provided & allowed:
            problems.append(
                f"{name} ({', '.join(sorted(provided))}; imported by {', '.join(sorted(importers))}) is neither on "
                "the GPU machine nor in the bundle: declare it in pyproject.toml and re-lock"
            )
    assert not problems, "\n".join(problems)


def test_audit_flags_what_neither_the_gpu_machine_nor_the_bundle_has(tmp_path: Path) -> None:
    import json as stdlib_module

    import kfp
    import yaml

    own = tmp_path / "work"
    write(own / "site" / "wsovvis_runtime" / "__init__.py")
    imports = {
        "json": stdlib_module.__file__,
        "yaml": yaml.__file__,  # PyYAML: on the GPU machine
        "kfp": kfp.__file__,  # not on the GPU machine, not in the bundle
        "wsovvis_runtime": str(own / "site" / "wsovvis_runtime" / "__init__.py"),
    }
    allowed = audit.allowed_distributions()
    assert {"pyyaml", "sacred", "pycocotools"} <= allowed and "kfp" not in allowed
    found = audit.classify(imports, allowed, [own])
    assert found["stdlib"] == ["json"]
    assert found["allowed"] == ["yaml"]
    assert found["own"] == ["wsovvis_runtime"]
    assert [entry.split()[0] for entry in found["missing"]] == ["kfp"]


def test_the_dry_runs_guard_refuses_what_the_gpu_machine_lacks(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed.json"
    allowed.write_text(json.dumps({"distributions": ["pyyaml"], "own_roots": [str(ROOT)]}))
    probe = (
        "from gpucheck import guard; guard.install('/nowhere')\n"
        "import yaml, wsovvis\n"
        "try:\n    import kfp\nexcept ModuleNotFoundError as exc:\n    print('refused', exc.name)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), guard.ALLOWED_ENV: str(allowed)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "refused kfp"


def test_script_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    out = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout


def test_a_failed_prerequisite_skips_the_rest_and_the_summary_says_why(tmp_path: Path) -> None:
    """Here there is no GPU, so the environment probe fails: nothing after it runs, and summary.json says so."""
    out = tmp_path / "out"
    ran = gpu_check("--bundle-dir", str(fake_bundle(tmp_path / "b")), "--out", str(out), "--budget", "120")
    assert ran.returncode == 1, ran.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "gpu" and summary["ok"] is False
    parts = summary["parts"]
    assert parts["env"]["status"] == "fail" and parts["env"]["reason"]
    assert list(parts) == list(run.PART_ORDER)
    assert all(parts[name]["status"] == "skipped" for name in run.PART_ORDER[1:])
    assert parts["smoke"]["reason"] == "prerequisite env failed"
    assert "===== env (exit 1" in (out / "gpu-check.log").read_text()
