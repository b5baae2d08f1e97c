"""The ``wsovvis`` command: one argparse subcommand per stage, each a thin front door onto a stage function.

Errors end with one line and an exit code (tracebacks only with ``--log-level DEBUG``): 1 unusable input,
2 usage, 3 runtime missing, 5 storage or other infrastructure fault (see docs/robustness.md).

Each module named in ``SUBCOMMANDS`` exposes ``add_parser(subparsers)``, which registers its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from wsovvis import __version__
from wsovvis.errors import StorageError, WsovvisError
from wsovvis.logs import setup_logging

log = logging.getLogger(__name__)

SUBCOMMANDS = (
    "wsovvis.prepare",
    "wsovvis.synth",
    "wsovvis.shards",
    "wsovvis.maskgen.cli",
    "wsovvis.convert.cli",
    "wsovvis.agnostic",
    "wsovvis.train.cli",
    "wsovvis.k8s.pytorchjob",
    "wsovvis.k8s.launcher",
    "wsovvis.evaluate.cli",
    "wsovvis.attribute.cli",
    "wsovvis.pipeline_cli",
    "wsovvis.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsovvis",
        description="Weakly-supervised open-vocabulary video instance segmentation: the pipeline's stages.",
    )
    parser.add_argument("--version", action="version", version=f"wsovvis {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
