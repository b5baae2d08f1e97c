"""prepare component body: the runtime check as a report artifact, and a failure when a stage needs it."""

import json
from pathlib import Path

import pytest
from kfp import dsl

from components.prepare.component import prepare
from wsovvis.errors import RuntimeMissingError
from wsovvis.prepare.step import runtime_status


def test_reports_the_runtime_and_fails_only_when_a_stage_that_runs_needs_it(tmp_path: Path) -> None:
    report = dsl.Artifact(name="report", uri=str(tmp_path / "report.json"))
    usable = prepare.python_func(mask_backend="motion", train_launcher="local", report=report)
    status = json.loads(Path(report.path).read_text())
    assert usable is status["ok"]
    if status["ok"]:
        pytest.skip("the CutLER/VNext runtime is set up here: nothing for prepare to refuse")
    assert status["problems"] == runtime_status()["problems"]
    with pytest.raises(RuntimeMissingError, match="mask_backend videocutler and train_launcher pytorchjob"):
        prepare.python_func(mask_backend="videocutler", train_launcher="pytorchjob", report=report)
