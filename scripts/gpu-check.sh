#!/usr/bin/env bash
# The one-shot GPU check of the CutLER/VNext runtime (docs/dev/gpu-check.md):
#   scripts/gpu-check.sh --bundle DIR                      here: trimmed sources + wheels into DIR (needs PyPI)
#   scripts/gpu-check.sh [--bundle-dir DIR] [--out DIR]    on the GPU machine: install from the bundle, build, measure
#   scripts/gpu-check.sh --dry-run [--bundle-dir DIR]      on a CPU: every part that needs no GPU, tiny inputs
# Runs $PYTHON (default python3); --help lists every option. Exit 0 when every part passed, 1 otherwise, 2 usage.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m gpucheck "$@"
