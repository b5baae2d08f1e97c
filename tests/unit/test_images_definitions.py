"""The image definitions: names in one place, locked dependencies in sync with pyproject, Dockerfile contracts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
# pyproject extras each image installs (besides the base dependencies)
IMAGE_EXTRAS = {
    "tools": ("pipeline", "k8s", "motion"),
    "runtime": ("pipeline", "k8s", "train", "motion", "attribute"),
}
IMAGE_ENV = (
    "WSOVVIS_IMAGE_REGISTRY",
    "WSOVVIS_IMAGE_TAG",
    "WSOVVIS_TOOLS_IMAGE",
    "WSOVVIS_RUNTIME_IMAGE",
    "WSOVVIS_RUNTIME_CPU_IMAGE",
)


def image_names(root: Path = ROOT, **env: str) -> dict[str, str]:
    """The image names ``python -m wsovvis.images`` prints for the checkout at ``root``."""
    clean = {k: v for k, v in os.environ.items() if k not in IMAGE_ENV}
    out = subprocess.run(
        [sys.executable, "-m", "wsovvis.images"],
        env={**clean, "PYTHONPATH": str(root), **env},
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("=", 1) for line in out.stdout.splitlines())


def test_image_names_default_to_a_tag_from_the_source_under_one_registry():
    from wsovvis import __version__
    from wsovvis.images import source_tag

    names = image_names()
    registries = {name.rsplit("/", 1)[0] for name in names.values()}
    assert len(registries) == 1
    tag = source_tag()
    assert tag.startswith(f"{__version__}-") and tag != __version__
    assert names["TOOLS_IMAGE"].endswith(f":{tag}") and names["RUNTIME_IMAGE"].endswith(f":{tag}")
    assert names["RUNTIME_CPU_IMAGE"] == names["RUNTIME_IMAGE"] + "-cpu"
    assert names["TOOLS_IMAGE"] != names["RUNTIME_IMAGE"]


def test_source_tag_changes_with_the_code_the_images_run_and_not_with_the_compiled_spec(tmp_path: Path):
    from wsovvis.images import source_tag

    for rel, text in {
        "pyproject.toml": "[project]\n",
        "wsovvis/convert.py": "X = 1\n",
        "images/tools/Dockerfile": "FROM python\n",
        "pipelines/wsovvis_pipeline.yaml": "image: a\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    before = source_tag(tmp_path)

    (tmp_path / "pipelines/wsovvis_pipeline.yaml").write_text("image: b\n")
    (tmp_path / "wsovvis/__pycache__").mkdir()
    (tmp_path / "wsovvis/__pycache__/convert.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "components/convert/tests").mkdir(parents=True)
    (tmp_path / "components/convert/tests/test_convert.py").write_text("def test(): pass\n")
    assert source_tag(tmp_path) == before

    (tmp_path / "wsovvis/convert.py").write_text("X = 2  # a fix under the same version\n")
    fixed = source_tag(tmp_path)
    assert fixed != before
    (tmp_path / "images/tools/Dockerfile").write_text("FROM python:3.11\n")
    assert source_tag(tmp_path) not in (before, fixed)


def test_the_fixed_names_are_the_version_under_the_default_registry_whatever_the_environment_says():
    """What components declare and the committed spec and manifests/train name: no digest, no environment."""
    code = "from wsovvis import images\nprint(images.TOOLS_IMAGE, images.RUNTIME_IMAGE, images.RUNTIME_CPU_IMAGE)"
    env = {"WSOVVIS_IMAGE_REGISTRY": "registry.example.com/team", "WSOVVIS_IMAGE_TAG": "mine"}
    for environment in ({}, env, {"WSOVVIS_TOOLS_IMAGE": "registry.example.com/tools:x"}):
        clean = {k: v for k, v in os.environ.items() if k not in IMAGE_ENV}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**clean, "PYTHONPATH": str(ROOT), **environment},
            capture_output=True,
            text=True,
            check=True,
        )
        from wsovvis import __version__

        registry = "localhost:5001/wsovvis"
        assert out.stdout.split() == [
            f"{registry}/tools:{__version__}",
            f"{registry}/runtime:{__version__}",
            f"{registry}/runtime:{__version__}-cpu",
        ]


def test_build_tag_is_the_source_digest_in_a_checkout_and_the_version_where_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from wsovvis import __version__
    from wsovvis.images import build_tag, source_tag

    monkeypatch.delenv("WSOVVIS_IMAGE_TAG", raising=False)
    assert build_tag() == source_tag() != __version__
    assert (
        build_tag(tmp_path / "site-packages") == __version__
    )  # no pyproject.toml and images/ beside wsovvis
    monkeypatch.setenv("WSOVVIS_IMAGE_TAG", "2024.1")
    assert build_tag() == "2024.1"


def test_image_names_follow_registry_tag_and_full_name_overrides():
    names = image_names(WSOVVIS_IMAGE_REGISTRY="registry.example.com/team/", WSOVVIS_IMAGE_TAG="2024.1")
    assert names == {
        "TOOLS_IMAGE": "registry.example.com/team/tools:2024.1",
        "RUNTIME_IMAGE": "registry.example.com/team/runtime:2024.1",
        "RUNTIME_CPU_IMAGE": "registry.example.com/team/runtime:2024.1-cpu",
    }
    names = image_names(WSOVVIS_RUNTIME_IMAGE="gpu.example.com/runtime@sha256:" + "0" * 64)
    assert names["RUNTIME_IMAGE"] == "gpu.example.com/runtime@sha256:" + "0" * 64
    assert names["TOOLS_IMAGE"] == image_names()["TOOLS_IMAGE"]


def parse_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip requirements lock with `==` pins and `--hash` lines."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split(" --hash=")
        requirement = Requirement(spec.strip())
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name}: {requirement.name} is not pinned with =="
        pins[canonicalize_name(requirement.name)] = (specifier.version, [h.strip() for h in options])
    return pins


def wanted_requirements(image: str) -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11 (tomllib)")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in IMAGE_EXTRAS[image]:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    for line in (IMAGES / image / "requirements.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            wanted.append(Requirement(line))
    return wanted


@pytest.mark.parametrize("image", sorted(IMAGE_EXTRAS))
def test_lock_pins_every_package_with_hashes(image: str):
    pins = parse_lock(IMAGES / image / "requirements.lock")
    for name, (_, hashes) in pins.items():
        assert hashes and all(h.startswith("sha256:") for h in hashes), f"{image}: {name} has no sha256 hash"


@pytest.mark.parametrize("image", sorted(IMAGE_EXTRAS))
def test_lock_satisfies_pyproject_and_the_image_requirements(image: str):
    """A changed dependency in pyproject.toml or requirements.in fails here until the lock is regenerated."""
    pins = parse_lock(IMAGES / image / "requirements.lock")
    environment = {"python_version": "3.11", "python_full_version": "3.11.2", "sys_platform": "linux"}
    for requirement in wanted_requirements(image):
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, (
            f"{image}: {requirement} is not in requirements.lock (regenerate it, docs/dev/platform.md)"
        )
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"{image}: lock pins {name}=={pins[name][0]}, which does not satisfy {requirement}"
        )


def dockerfile(image: str) -> str:
    return (IMAGES / image / "Dockerfile").read_text()


def final_stage(text: str) -> str:
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]


@pytest.mark.parametrize("image", sorted(IMAGE_EXTRAS))
def test_images_run_as_a_non_root_user(image: str):
    users = re.findall(r"^USER\s+(\S+)", final_stage(dockerfile(image)), flags=re.MULTILINE)
    assert users, f"{image}: the final stage sets no USER"
    assert users[-1] not in ("0", "root") and users[-1].split(":")[0] != "0"


@pytest.mark.parametrize("image", sorted(IMAGE_EXTRAS))
def test_images_install_exactly_the_lock(image: str):
    text = dockerfile(image)
    assert f"images/{image}/requirements.lock" in text
    assert re.search(
        r"pip install [^\n]*--require-hashes[^\n]*--no-deps|--no-deps[^\n]*--require-hashes", text
    )


@pytest.mark.parametrize("image", sorted(IMAGE_EXTRAS))
def test_base_image_is_a_build_argument(image: str):
    assert re.search(r"^ARG BASE=\S+", dockerfile(image), flags=re.MULTILINE)
    assert re.search(r"^FROM \$\{BASE\}", dockerfile(image), flags=re.MULTILINE)


@pytest.mark.parametrize("image", sorted(IMAGE_EXTRAS))
def test_what_the_image_records_is_rebuilt_when_only_a_build_argument_changes(image: str):
    """podman 4.3 reused a cached LABEL/ENV of an older commit (checked with two builds differing only in a
    --build-arg): a RUN naming every recorded argument comes before them, and RUN layers are cached by value."""
    stage = final_stage(dockerfile(image))
    recorded = set(re.findall(r"^ARG (\w+)=unknown$", stage, flags=re.MULTILINE))
    assert {"WSOVVIS_IMAGE", "WSOVVIS_GIT_COMMIT"} <= recorded
    run = re.search(r"^RUN : (.*)$", stage, flags=re.MULTILINE)
    assert run and set(re.findall(r"\$\{(\w+)\}", run.group(1))) == recorded
    for line in re.findall(r"^(?:LABEL|ENV) .*\$\{.*$", stage, flags=re.MULTILINE):
        if set(re.findall(r"\$\{(\w+)\}", line)) & recorded:
            assert stage.index(line) > run.start(), line


def test_tools_image_leaves_the_entrypoint_to_kfp():
    assert not re.search(r"^ENTRYPOINT", dockerfile("tools"), flags=re.MULTILINE)


def test_runtime_image_has_a_cpu_and_a_cuda_flavour_with_a_configurable_arch_list():
    text = dockerfile("runtime")
    assert re.search(r"^ARG FLAVOUR=cuda$", text, flags=re.MULTILINE)
    assert re.search(r"^ARG TORCH_CUDA_ARCH_LIST=", text, flags=re.MULTILINE)
    assert re.search(r'--build-ops --cuda-arch-list "\$TORCH_CUDA_ARCH_LIST"', text)
    # the upstream trees come from the build context (staged by the build script), never fetched or committed
    assert "COPY images/build/third_party/ /opt/src/" in text
    assert "git fetch" not in text and "git clone" not in text


def test_every_component_image_has_a_definition(tmp_path: Path):
    """Each step's compiled image is one of wsovvis/images.py's names, built from a Dockerfile under images/."""
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("kfp", reason="compiling the pipeline needs kfp")
    from pipelines.compile import compile_pipeline
    from wsovvis.images import RUNTIME_IMAGE, TOOLS_IMAGE

    definitions = {
        TOOLS_IMAGE: IMAGES / "tools" / "Dockerfile",
        RUNTIME_IMAGE: IMAGES / "runtime" / "Dockerfile",
    }
    spec, _ = yaml.safe_load_all(compile_pipeline(tmp_path / "spec.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"]
    # the model's importer registers a URI and runs no container
    images = {
        name: executor["container"]["image"]
        for name, executor in executors.items()
        if "container" in executor
    }
    assert set(images) >= {
        f"exec-{step}" for step in ("prepare", "plan-shards", "mask-gen", "convert", "train", "attribute")
    }
    for executor, image in images.items():
        assert image in definitions, f"{executor} runs in {image}, which no image definition builds"
        assert definitions[image].is_file()
    # the steps that import torch, CutLER or VNext run in the runtime image
    runtime_steps = ("exec-prepare", "exec-mask-gen", "exec-train", "exec-attribute")
    assert {images[name] for name in runtime_steps} == {RUNTIME_IMAGE}


def checkout_copy(tmp_path: Path) -> Path:
    """What the build script reads, copied, so that its staging folder is not this checkout's (a build may be
    running here): the script and every file the image tag's digest covers, so the copy's tags are this
    checkout's."""
    from wsovvis.images import _source_files

    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "build-images.sh", root / "scripts")
    for file in _source_files(ROOT):
        copy = root / file.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, copy)
    return root


def build_script(*args: str, root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The build script with `echo` as the engine: prints the commands it would run."""
    clean = {k: v for k, v in os.environ.items() if k not in IMAGE_ENV}
    return subprocess.run(
        [str(root / "scripts" / "build-images.sh"), *args],
        env={**clean, "CONTAINER_ENGINE": "echo", "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_build_script_tags_the_tools_image_with_the_name_from_wsovvis_images(tmp_path: Path):
    root = checkout_copy(tmp_path)
    out = build_script("tools", root=root, WSOVVIS_TOOLS_IMAGE="registry.example.com/wsovvis-tools:test")
    assert out.returncode == 0, out.stderr
    build_line = out.stdout.splitlines()[0]
    assert "-f images/tools/Dockerfile -t registry.example.com/wsovvis-tools:test" in build_line


def test_build_script_rejects_unknown_arguments(tmp_path: Path):
    out = build_script("toolz", root=checkout_copy(tmp_path))
    assert out.returncode == 2 and "unknown argument: toolz" in out.stderr


# What `pip install -e` of a tree on the host leaves in it; never staged into the image.
HOST_BUILD_ARTEFACTS = (
    "build/temp.linux-x86_64-cpython-311/x.o",
    "pkg/_C.cpython-311-x86_64-linux-gnu.so",
    "pkg.egg-info/PKG-INFO",
    "pkg/__pycache__/x.cpython-311.pyc",
)


def fake_third_party(root: Path, names=("CutLER", "VNext", "detectron2")) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "README.md").write_text(f"{name}\n")
        (root / name / "pkg").mkdir()
        (root / name / "pkg" / "module.py").write_text("")
        for artefact in HOST_BUILD_ARTEFACTS:
            (root / name / artefact).parent.mkdir(parents=True, exist_ok=True)
            (root / name / artefact).write_text("")
    return root


def test_build_script_stages_the_third_party_sources_from_a_local_folder(tmp_path: Path):
    pins = json.loads((ROOT / "third_party" / "pins.json").read_text())
    source = fake_third_party(tmp_path / "src")
    root = checkout_copy(tmp_path)
    out = build_script("runtime-cpu", root=root, WSOVVIS_THIRD_PARTY_DIR=str(source), WSOVVIS_CA_BUNDLE="")
    assert out.returncode == 0, out.stderr
    build_line = out.stdout.splitlines()[0]
    assert "--build-arg FLAVOUR=cpu" in build_line and "-f images/runtime/Dockerfile" in build_line
    # the copy's own names: its tag is a digest of the copy's sources
    assert f"-t {image_names(root)['RUNTIME_CPU_IMAGE']}" in build_line
    for name in ("CutLER", "VNext", "detectron2"):
        assert f"{name}@{pins[name]['commit']}" in build_line
        staged = root / "images" / "build" / "third_party" / name
        assert (staged / "README.md").read_text() == f"{name}\n" and (staged / "pkg" / "module.py").is_file()
        # the host's build artefacts stay out (the image compiles its own; they would bust the layer cache)
        assert sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()) == [
            "README.md",
            "pkg/module.py",
        ]


def test_build_script_names_the_missing_third_party_source(tmp_path: Path):
    source = fake_third_party(tmp_path / "src", names=("CutLER", "detectron2"))
    out = build_script("runtime", root=checkout_copy(tmp_path), WSOVVIS_THIRD_PARTY_DIR=str(source))
    assert out.returncode == 1
    assert "third-party source VNext is missing" in out.stderr and "WSOVVIS_THIRD_PARTY_DIR" in out.stderr
