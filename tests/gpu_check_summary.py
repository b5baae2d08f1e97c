"""What a passing dry run of the GPU check (``scripts/gpu-check.sh --dry-run``) leaves in its ``--out`` folder: one
rule for the runtime test (the runtime python here) and the container test (the runtime image's)."""

from __future__ import annotations

import json
from pathlib import Path

PARTS = ["env", "install", "detectron2", "ops", "msda", "maskgen", "train", "nccl", "smoke", "audit"]


def assert_dry_run_passed(out: Path, returncode: int, output: str, iterations: int) -> dict[str, float]:
    """Every part passed on the CPU, the parts' own figures say so too; returns each part's seconds."""
    assert (out / "summary.json").is_file(), f"no summary.json (exit {returncode}):\n{output[-5000:]}"
    summary = json.loads((out / "summary.json").read_text())
    statuses = {name: part["status"] for name, part in summary["parts"].items()}
    reasons = {
        name: part.get("reason", "")[-600:] for name, part in summary["parts"].items() if part.get("reason")
    }
    assert returncode == 0, f"{statuses}\n{reasons}\n{output[-5000:]}"
    assert summary["ok"] and summary["mode"] == "dry-run"
    assert statuses == dict.fromkeys(PARTS, "pass")
    parts = {name: part["details"] for name, part in summary["parts"].items() if "details" in part}
    assert parts["maskgen"]["msda_path_taken"] == "pytorch"
    assert parts["maskgen"]["videos_done"] == parts["maskgen"]["videos"]
    assert parts["train"]["iterations"] == iterations and parts["train"]["msda_calls"]["pytorch"] > 0
    assert parts["audit"]["missing"] == []
    assert {"sacred", "fvcore", "detectron2", "wsovvis_runtime"} <= set(
        parts["audit"]["own"]
    )  # from the bundle
    assert "===== maskgen" in (out / "gpu-check.log").read_text()
    return {name: part["seconds"] for name, part in summary["parts"].items()}
