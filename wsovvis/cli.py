"""The ``wsovvis`` command: one argparse subcommand per stage, each a thin front door onto a stage function.

Errors end with one line and an exit code (tracebacks only with ``--log-level DEBUG``): 1 unusable input,
2 usage, 3 runtime missing, 5 storage or other infrastructure fault (see docs/guide/troubleshooting.md).

Each module named in ``SUBCOMMANDS`` exposes ``add_parser(subparsers)``, which registers its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code. A command line naming a command
imports only that command's module (the others' imports cost a few hundred ms); help without one imports all.

These are the stages only (``python -m wsovvis``): the library never imports its application layer. The installed
``wsovvis`` console script is ``pipelines/cli.py``, which passes this module's functions a table with the
``pipeline`` and ``demo`` commands added on top.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import sys
from collections.abc import Mapping, Sequence

from wsovvis import __version__
from wsovvis.errors import StorageError, WsovvisError
from wsovvis.logs import setup_logging

log = logging.getLogger(__name__)

# Command name -> the module whose add_parser registers it.
SUBCOMMANDS = {
    "prepare": "wsovvis.prepare",
    "synth": "wsovvis.synth",
    "plan-shards": "wsovvis.shards",
    "mask-gen": "wsovvis.maskgen.cli",
    "convert": "wsovvis.convert.cli",
    "make-agnostic": "wsovvis.agnostic",
    "train": "wsovvis.train.cli",
    "render-pytorchjob": "wsovvis.k8s.pytorchjob",
    "render-trainjob": "wsovvis.k8s.trainjob",
    "launch-pytorchjob": "wsovvis.k8s.launcher",
    "evaluate": "wsovvis.evaluate.cli",
    "attribute": "wsovvis.attribute.cli",
}


def build_parser(
    command: str | None = None, commands: Mapping[str, str] = SUBCOMMANDS
) -> argparse.ArgumentParser:
    """The ``wsovvis`` parser with every command of ``commands`` (name -> module), or with only ``command``'s when
    it names one."""
    parser = argparse.ArgumentParser(
        prog="wsovvis",
        description="Weakly-supervised open-vocabulary video instance segmentation: the pipeline's stages.",
    )
    parser.add_argument("--version", action="version", version=f"wsovvis {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    modules = [commands[command]] if command in commands else commands.values()
    for module_name in modules:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The command a command line runs: its first argument after the global ``--log-level`` option, if any."""
    args = list(argv)
    while args and (args[0] == "--log-level" or args[0].startswith("--log-level=")):
        del args[: 2 if args[0] == "--log-level" else 1]
    return args[0] if args else None


def main(argv: Sequence[str] | None = None, commands: Mapping[str, str] = SUBCOMMANDS) -> int:
    """Run one command line of ``commands`` (default: the stages); return its exit code."""
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(command_of(argv), commands).parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except WsovvisError as exc:
        log.debug("traceback", exc_info=True)
        log.error("%s", exc)
        return exc.exit_code
    except OSError as exc:  # a local fault nothing nearer to it translated: one line, the infrastructure code
        log.debug("traceback", exc_info=True)
        where = f"{exc.filename}: " if exc.filename else ""
        log.error("%s%s", where, exc.strerror or exc)
        return StorageError.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


def run(commands: Mapping[str, str] = SUBCOMMANDS) -> int:
    """The ``wsovvis`` command: :func:`main`, for a process that ends with it.

    What is still alive then is frozen out of the garbage collector: interpreter shutdown runs full collections
    that would traverse every object only to find the process ending (20-30 ms after an evaluation)."""
    code = main(None, commands)
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(run())
