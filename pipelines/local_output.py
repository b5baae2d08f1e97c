"""What a local run prints: each step's output into its own log file, and on the terminal one line per step, the
steps' warnings and errors, and a failed step as one error naming the step and its log.

kfp.local prints everything: every task's executor input as JSON, the runner's warnings about settings that do
nothing locally, ANSI colours (into files too) and each retry's traceback. It has no level for any of it: its
messages go through the root logger with handlers it swaps in and out per task, and a task's output is printed line
by line as it comes. Here, below ``--log-level DEBUG``, those are replaced: the task's lines go to
``<task folder>/step.log`` (kfp's ``[KFP Executor ... LEVEL]:`` prefix tells the stage's warnings apart, which are
shown), kfp's own messages below WARNING and its known warnings are dropped, and colours go where no terminal is.
With DEBUG everything kfp prints is printed as before (without colours off a terminal). Either way a step runs once:
a step that failed is not retried (retries are for a cluster's transient faults; locally they repeat the failure).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wsovvis.errors import WsovvisError

log = logging.getLogger(__name__)

STEP_LOG = "step.log"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A record of the KFP executor's logging.basicConfig in the task: "[KFP Executor 2026-12-05 15:08:56,526 WARNING]: ..."
KFP_RECORD = re.compile(r"^\[KFP Executor [^\]]* (?P<level>[A-Z]+)\]: (?P<message>.*)$")
# What the KFP executor itself says about every task (its input as JSON, where it wrote its outputs)
KFP_OWN = (
    "Looking for component",
    "Loading KFP component",
    "Got executor_input",
    "Wrote executor output",
    "Did not ",
)
# The warnings kfp.local gives for every task here: resources and accelerators do nothing locally; the images are
# not Python ones (they are, with wsovvis installed; the SubprocessRunner runs this interpreter anyway).
KFP_WARNINGS = (r"Task '.*': settings \[.*\] have no effect", r"You may be attemping to run a task")
# The last line of a traceback: "wsovvis.errors.InputError: /data/frames: no videos found"
TRACEBACK_END = re.compile(
    r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\w*)(?:: (?P<message>.*))?$"
)


def is_debug() -> bool:
    return logging.getLogger().getEffectiveLevel() <= logging.DEBUG


def task_folder(command: list[str]) -> Path | None:
    """The task's folder under the pipeline root: where its executor input says its outputs go."""
    if "--executor_input" not in command:
        return None
    try:
        executor_input = json.loads(command[command.index("--executor_input") + 1])
        return Path(executor_input["outputs"]["outputFile"]).parent
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def step_name(folder: Path | None, command: list[str]) -> str:
    """The task's name as its folder says ("convert"; "mask-gen[1]" for ParallelFor iteration 1)."""
    if folder is None:
        return (
            command[command.index("--function_to_execute") + 1] if "--function_to_execute" in command else "?"
        )
    iteration = re.fullmatch(r"for-loop-\d+-iteration-(\d+)", folder.parent.name)
    return f"{folder.name}[{iteration.group(1)}]" if iteration else folder.name


@dataclass(frozen=True)
class StepFailure:
    name: str
    exit_code: int
    log_path: Path | None
    error_type: str
    message: str

    def error(self) -> WsovvisError:
        """The step's own error (a wsovvis error keeps its class, hence its exit code), naming the step and log."""
        cls: type[WsovvisError] = WsovvisError
        module_name, _, class_name = self.error_type.rpartition(".")
        if module_name.split(".")[0] == "wsovvis":
            with contextlib.suppress(ImportError):
                found = getattr(importlib.import_module(module_name), class_name, None)
                if isinstance(found, type) and issubclass(found, WsovvisError):
                    cls = found
        where = f"; its log: {self.log_path}" if self.log_path else ""
        what = self.message or self.error_type or f"exit code {self.exit_code}"
        return cls(f"step {self.name} failed: {what}{where}")


class StepOutput:
    """One step's output, line by line: all of it into its log file; on the terminal everything with DEBUG,
    else the stage's records at WARNING and above."""

    def __init__(self, name: str, log_path: Path | None, debug: bool) -> None:
        self.name = name
        self.log_path = log_path
        self.debug = debug
        self.started = time.monotonic()
        self._file = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115 - closed in finish
        self._level: int | None = None
        self._last_record = ""
        self._last_error = ("", "")

    def feed(self, line: str) -> None:
        if self._file:
            self._file.write(line if line.endswith("\n") else line + "\n")
        if self.debug:
            print(line, end="" if line.endswith("\n") else "\n")
            return
        text = ANSI.sub("", line.rstrip("\n"))
        if end := TRACEBACK_END.match(text):
            self._last_error = (end.group("type"), end.group("message") or "")
        if record := KFP_RECORD.match(text):
            message = record.group("message")
            level = logging.getLevelName(record.group("level"))
            own = message.startswith(KFP_OWN) or not isinstance(level, int)
            self._level = None if own else level
        elif text.startswith("Traceback (most recent call last)"):
            self._level = None  # an uncaught exception's traceback: its last line ends the step's error
            return
        else:
            message = text  # the record's next line, or what the step printed outside its records
        if not message.strip() or self._level is None or self._level < logging.WARNING:
            return
        if record:
            self._last_record = message
        log.log(self._level, "%s", message)

    def finish(self, exit_code: int) -> StepFailure | None:
        if self._file:
            self._file.close()
        if exit_code == 0:
            log.info("%s: done in %.1f s", self.name, time.monotonic() - self.started)
            return None
        error_type, message = self._last_error
        return StepFailure(self.name, exit_code, self.log_path, error_type, message or self._last_record)


class SubprocessSteps:
    """What kfp.local's SubprocessRunner runs for each task (``run_local_subprocess`` replaced): the task's
    command with its output to :class:`StepOutput`; a task that failed returns its exit code again at once instead
    of running again (kfp.local retries as set_retry says)."""

    def __init__(self) -> None:
        self.debug = is_debug()  # now: kfp sets the root logger's level to INFO while it runs a task
        self.failures: list[StepFailure] = []
        self._failed: dict[Path, int] = {}
        self._lock = threading.Lock()

    def __call__(self, full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        folder = task_folder(full_command)
        with self._lock:
            if folder is not None and folder in self._failed:
                return self._failed[folder]
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        output = StepOutput(
            step_name(folder, full_command), folder / STEP_LOG if folder else None, self.debug
        )
        env = {**os.environ, **(env_vars or {})}
        with subprocess.Popen(
            full_command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                output.feed(line)
            exit_code = process.wait()
        failure = output.finish(exit_code)
        if failure is not None:
            with self._lock:
                self.failures.append(failure)
                if folder is not None:
                    self._failed[folder] = exit_code
        return exit_code

    def error(self) -> WsovvisError | None:
        """The first failed step's error, or None."""
        return self.failures[0].error() if self.failures else None


class _KfpRecords(logging.Filter):
    """kfp.local's own messages (logged on the root logger): WARNING and above, without colours, and not the task
    statuses this module reports itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or "finished with status" in str(record.msg):
            return False
        record.msg, record.args = ANSI.sub("", record.getMessage()), ()
        return True


@contextlib.contextmanager
def kfp_output_quieted(subprocess_steps: SubprocessSteps | None = None) -> Iterator[None]:
    """kfp.local as described in the module docstring, while running one pipeline; ``subprocess_steps`` runs the
    SubprocessRunner's tasks."""
    from kfp.local import logging_utils, subprocess_task_handler

    debug = is_debug()
    patches: list[tuple[object, str, object]] = []
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        patches.append((logging_utils, "color_text", lambda text, color: text))
    if subprocess_steps is not None:
        patches.append((subprocess_task_handler, "run_local_subprocess", subprocess_steps))
    kfp_filter = _KfpRecords()
    if not debug:
        patches.append((logging_utils, "local_logger_context", contextlib.nullcontext))
        patches.append((logging_utils, "print_horizontal_line", lambda: None))
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    root = logging.getLogger()
    with warnings.catch_warnings():
        if not debug:
            for message in KFP_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            root.addFilter(kfp_filter)
        for owner, name, value in patches:
            setattr(owner, name, value)
        try:
            yield
        finally:
            for owner, name, value in originals:
                setattr(owner, name, value)
            root.removeFilter(kfp_filter)
