"""What a local run prints of a step: its log in a file, its warnings, one error line naming the step and its log."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from pipelines.local_output import STEP_LOG, StepOutput, SubprocessSteps, step_name, task_folder
from wsovvis.errors import InputError, RuntimeMissingError, StorageError, WsovvisError

STEP_LINES = [
    "[KFP Executor 2026-12-05 15:08:56,488 INFO]: Got executor_input:\n",
    "{\n",
    '    "inputs": {}\n',
    "}\n",
    "[KFP Executor 2026-12-05 15:08:56,526 INFO]: convert: 6/6 videos converted\n",
    "[KFP Executor 2026-12-05 15:08:56,527 WARNING]: convert: video v1 skipped: \x1b[91mno masks\x1b[0m\n",
    "Traceback (most recent call last):\n",
    '  File "x.py", line 1, in <module>\n',
    "wsovvis.errors.InputError: /data/frames: not a folder\n",
]


def _records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "pipelines.local_output"]


def test_a_step_shows_its_warnings_keeps_all_in_its_log_and_fails_as_its_own_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    output = StepOutput("convert", tmp_path / STEP_LOG, debug=False)
    for line in STEP_LINES:
        output.feed(line)
    failure = output.finish(1)

    assert _records(caplog) == [("WARNING", "convert: video v1 skipped: no masks")]
    assert (tmp_path / STEP_LOG).read_text() == "".join(STEP_LINES)
    assert failure is not None
    error = failure.error()
    assert type(error) is InputError and error.exit_code == 1
    assert str(error) == f"step convert failed: /data/frames: not a folder; its log: {tmp_path / STEP_LOG}"


@pytest.mark.parametrize(
    ("last_line", "error_type", "exit_code"),
    [
        ("wsovvis.errors.RuntimeMissingError: prepare: no runtime", RuntimeMissingError, 3),
        ("wsovvis.errors.StorageError: s3://b: unreachable", StorageError, 5),
        ("wsovvis.storage.StorageNotFoundError: s3://b/k: no such key", InputError, 1),
        ("ValueError: something else", WsovvisError, 1),
        ("os.NoSuchError: not wsovvis", WsovvisError, 1),
    ],
)
def test_a_failed_step_keeps_the_exit_code_of_its_error(
    tmp_path: Path, last_line: str, error_type: type, exit_code: int
) -> None:
    output = StepOutput("prepare", None, debug=False)
    output.feed("Traceback (most recent call last):\n")
    output.feed(last_line + "\n")
    error = output.finish(1).error()
    assert isinstance(error, error_type) and error.exit_code == exit_code
    assert str(error).startswith("step prepare failed: ") and "; its log" not in str(error)


def test_a_step_that_succeeds_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    output = StepOutput("plan-shards", None, debug=False)
    output.feed("[KFP Executor 2026-12-05 15:08:56,526 INFO]: plan-shards: 6 videos\n")
    assert output.finish(0) is None
    ((level, message),) = _records(caplog)
    assert level == "INFO" and message.startswith("plan-shards: done in ")


def test_with_debug_every_line_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = StepOutput("convert", tmp_path / STEP_LOG, debug=True)
    for line in STEP_LINES:
        output.feed(line)
    output.finish(0)
    assert capsys.readouterr().out == "".join(STEP_LINES)


def _command(folder: Path, code: str) -> list[str]:
    executor_input = {"outputs": {"outputFile": str(folder / "executor_output.json")}}
    return [
        sys.executable,
        "-c",
        code,
        "--executor_input",
        json.dumps(executor_input),
        "--function_to_execute",
        "f",
    ]


def test_a_failed_task_runs_once_however_often_kfp_retries_it(tmp_path: Path) -> None:
    folder = tmp_path / "run" / "for-loop-1-iteration-1" / "mask-gen"
    command = _command(folder, "import sys; print('ran', flush=True); sys.exit(3)")
    steps = SubprocessSteps()
    assert [steps(command) for _ in range(4)] == [3, 3, 3, 3]
    assert (folder / STEP_LOG).read_text() == "ran\n"
    assert [f.name for f in steps.failures] == ["mask-gen[1]"]
    assert step_name(task_folder(command), command) == "mask-gen[1]"
