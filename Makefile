# The two set-up commands of the README: `make demo` (the whole pipeline on a generated dataset, locally)
# and `make test` (the default test suite, with the real S3 and Kubernetes API servers it starts itself).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo

.PHONY: venv demo test test-runtime apiserver lint format images container-engine demo-containers test-containers clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: venv
	$(BIN)/wsovvis demo --out $(OUT)

test: venv apiserver
	$(BIN)/python -m pytest

# A real kube-apiserver (v1.20, from Debian's kubernetes source package) for the apiserver tests: built once per
# machine and cached; where it cannot be built (no root, no Debian) those tests skip and say why.
apiserver:
	scripts/kube-apiserver/build.sh || echo "kube-apiserver could not be built: the apiserver tests will skip"

# Every runtime test with the runtime's own python, one pytest process per file: VideoCutLER's Mask2Former and VNext's
# SeqFormer register the same detectron2 dataset names at import, so in one process the second import fails. All files
# run; the target fails if any did (pytest's exit 5 is a file skipped whole, saying why).
RUNTIME_TESTS := $(sort $(wildcard tests/runtime/test_*.py))
test-runtime:
	@test -n "$(RUNTIME_PY)" || { echo 'set RUNTIME_PY to a python with CutLER/VNext installed (docs/dev/runtime.md)'; exit 2; }
	@failed=; for test in $(RUNTIME_TESTS); do \
	  echo "== $$test"; PYTHONPATH=$(CURDIR) $(RUNTIME_PY) -m pytest "$$test"; status=$$?; \
	  [ $$status -eq 0 ] || [ $$status -eq 5 ] || failed="$$failed $$test"; \
	done; if [ -n "$$failed" ]; then echo "runtime tests failed:$$failed"; exit 1; fi

# The images, with podman or Docker and no registry: the tools image, the runtime image's CPU flavour (local
# container runs) and its CUDA flavour (with --local-base only its CPU stages build: no CUDA base image can be made
# without a registry). IMAGE_ARGS= on a machine that pulls bases from a registry. Podman, buildah and debootstrap
# are installed with apt when neither Docker nor podman is present. Sources: third_party/ submodules, or
# WSOVVIS_THIRD_PARTY_DIR; WSOVVIS_WHEEL_DIRS (podman) adds local wheel folders (docs/dev/platform.md).
IMAGE_ARGS ?= --local-base
images: container-engine
	scripts/build-images.sh $(IMAGE_ARGS) tools runtime-cpu runtime

container-engine:
	@if { command -v podman && command -v debootstrap; } >/dev/null || docker info >/dev/null 2>&1; then :; \
	else apt-get update -qq && apt-get install -y -qq podman buildah runc fuse-overlayfs slirp4netns debootstrap uidmap; fi

# The demo with every step in its image (DockerRunner on podman's Docker API, started and stopped around it).
demo-containers: venv images
	scripts/containers.sh run $(BIN)/wsovvis demo --containers --out out/demo-containers

# Builds what changed (layer cache), then runs the pipeline in containers, the failing-step checks and the GPU check's
# dry run in the runtime image (docs/dev/gpu-check.md). PYTEST_ARGS narrows it, e.g. PYTEST_ARGS='-k gpu_check'.
PYTEST_ARGS ?=
test-containers: venv images
	scripts/containers.sh run $(BIN)/python -m pytest -m containers tests/containers $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) out .pytest_cache
