"""The CLI imports only the named command's module; the parser it builds is the full parser's for that command."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from wsovvis import cli

ROOT = Path(__file__).resolve().parents[2]


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_is_registered_by_its_module() -> None:
    assert sorted(_commands(cli.build_parser())) == sorted(cli.SUBCOMMANDS)


@pytest.mark.parametrize("command", sorted(cli.SUBCOMMANDS))
def test_one_command_parser_equals_the_full_parsers(command: str) -> None:
    only = _commands(cli.build_parser(command))
    assert list(only) == [command]
    assert only[command].format_help() == _commands(cli.build_parser())[command].format_help()


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


def test_running_a_command_imports_no_other_commands_module() -> None:
    code = (
        "import sys\n"
        "from wsovvis import cli\n"
        "try:\n"
        "    cli.main(['evaluate', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in cli.SUBCOMMANDS.values() if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "['wsovvis.evaluate.cli']"


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
