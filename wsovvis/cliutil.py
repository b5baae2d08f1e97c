"""Small helpers shared by the subcommand parsers."""

from __future__ import annotations

import argparse
from typing import Any


def add_flag(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> argparse.Action:
    """Add ``--snake_name`` and its ``--dash-name`` spelling as one option."""
    spellings = [name]
    dashed = name.replace("_", "-")
    if dashed != name:
        spellings.append(dashed)
    kwargs.setdefault("dest", name.lstrip("-"))
    return parser.add_argument(*spellings, **kwargs)


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value
