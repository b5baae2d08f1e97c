"""The CLI imports only the named command's module; the parser it builds is the full parser's for that command.

Two tables: the stages (``wsovvis.cli``, ``python -m wsovvis``) and the installed ``wsovvis`` command on top of them
(``pipelines/cli.py``: the stages plus ``pipeline`` and ``demo``)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import cli as front_door
from wsovvis import cli

ROOT = Path(__file__).resolve().parents[2]


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_is_registered_by_its_module() -> None:
    assert sorted(_commands(cli.build_parser())) == sorted(cli.SUBCOMMANDS)
    installed = front_door.COMMANDS
    assert sorted(_commands(cli.build_parser(None, installed))) == sorted(installed)


def test_the_installed_command_is_the_stages_with_pipeline_and_demo_on_top() -> None:
    assert front_door.COMMANDS == {
        **cli.SUBCOMMANDS,
        "pipeline": "pipelines.pipeline_cli",
        "demo": "pipelines.demo",
    }
    assert not {"pipeline", "demo"} & set(cli.SUBCOMMANDS)  # the library's table stays below them


@pytest.mark.parametrize("command", sorted(front_door.COMMANDS))
def test_one_command_parser_equals_the_full_parsers(command: str) -> None:
    only = _commands(cli.build_parser(command, front_door.COMMANDS))
    assert list(only) == [command]
    full = _commands(cli.build_parser(None, front_door.COMMANDS))
    assert only[command].format_help() == full[command].format_help()
    if command in cli.SUBCOMMANDS:
        assert _commands(cli.build_parser(command))[command].format_help() == only[command].format_help()


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["evaluate", "--gt", "g"], "evaluate"),
        (["--log-level", "WARNING", "evaluate"], "evaluate"),
        (["--log-level=DEBUG", "convert", "evaluate"], "convert"),
        (["--help"], "--help"),
        ([], None),
    ],
)
def test_command_of(argv: list[str], command: str | None) -> None:
    assert cli.command_of(argv) == command


@pytest.mark.parametrize("entry", ["wsovvis.cli", "pipelines.cli"])
def test_running_a_command_imports_no_other_commands_module(entry: str) -> None:
    """Through either front door (the installed one runs in every training pod), a stage command loads neither
    another command's module nor kfp."""
    code = (
        "import sys\n"
        f"import {entry} as entry\n"
        "from pipelines.cli import COMMANDS\n"
        "try:\n"
        "    entry.main(['evaluate', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in COMMANDS.values() if m in sys.modules), 'kfp' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "['wsovvis.evaluate.cli'] False"


def test_the_stage_command_has_no_pipeline_command_and_the_installed_one_has() -> None:
    def help_text(*command: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", *command, "--help"], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout

    stages, installed = help_text("wsovvis"), help_text("pipelines")
    assert "attribute" in stages and "pipeline" not in stages.split() and "demo" not in stages.split()
    assert {"attribute", "pipeline", "demo"} <= set(installed.split())


def test_the_command_leaves_what_is_alive_out_of_shutdown_collections(tmp_path: Path) -> None:
    # The entry point returns the command's exit code with every live object frozen, so the collections run at
    # interpreter shutdown do not traverse them.
    code = (
        "import gc, sys\n"
        "from wsovvis import cli\n"
        f"sys.argv = ['wsovvis', 'evaluate', '--gt', {str(tmp_path / 'gt.json')!r}, '--results', 'r.json']\n"
        "code = cli.run()\n"
        "print(code, gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["1", "True"]
