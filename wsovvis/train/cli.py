"""The ``wsovvis train`` front door, with Sacred's command-line shape.

    wsovvis train [print_config] with CONFIG.yaml [MORE.yaml ...] [key=value ...] [-F RUNS_URI]

``-F`` is where the Sacred runs go (local folder or s3:// prefix; default ``<output_uri>/sacred``).

Why not Sacred's own command line (``Experiment.run_commandline``): it parses and starts the run in one call, in
the calling process, with config files and ``-F`` on local paths only; the harness must check the config and
every input before any process starts, create the run in the global main worker only, and read configs and
write runs on S3. So the same grammar is parsed here (:mod:`wsovvis.train.config`), values read as Sacred reads
them.
"""

from __future__ import annotations

import argparse
import json
import sys

from wsovvis.errors import UsageError

COMMANDS = ("print_config",)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train SeqFormer (or run eval-only inference) under the Sacred/DDP harness",
        description=(
            "Train or evaluate under the harness: Sacred run on the main process, one process per local "
            "device, checkpoints synced to output_uri. Config: YAML/JSON files and key=value updates after 'with' "
            "(dotted keys for nested values, e.g. data.train_json=s3://bucket/train.json). 'print_config' "
            "prints the resolved config and exits."
        ),
    )
    parser.add_argument(
        "words",
        nargs="*",
        metavar="[print_config] with CONFIG.yaml [key=value ...]",
        help="Sacred-style config",
    )
    parser.add_argument(
        "-F",
        "--file_storage",
        "--file-storage",
        dest="runs_uri",
        metavar="RUNS_URI",
        help="where Sacred runs are stored (default: <output_uri>/sacred)",
    )
    parser.set_defaults(func=_run)


def split_words(words: list[str]) -> tuple[str | None, list[str]]:
    """``[command] with updates...`` -> (command, updates)."""
    command = None
    if words and words[0] in COMMANDS:
        command, words = words[0], words[1:]
    if not words:
        raise UsageError("wsovvis train: give the config as 'with CONFIG.yaml [key=value ...]'")
    if words[0] != "with":
        raise UsageError(f"wsovvis train: expected 'with' before the config, got {words[0]!r}")
    return command, words[1:]


def _run(args: argparse.Namespace) -> int:
    from wsovvis.train.config import load_config

    command, words = split_words(args.words)
    config = load_config(words)
    if command == "print_config":
        json.dump(config.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from wsovvis.train.harness import train

    train(config, args.runs_uri)
    return 0
