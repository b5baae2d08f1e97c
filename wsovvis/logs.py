"""Logging set-up (once, by the CLI) and progress bars that turn themselves off in pods."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the root logger once; later calls only change the level."""
    root = logging.getLogger()
    if not any(getattr(h, "_wsovvis", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        handler._wsovvis = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


def progress(
    iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it"
) -> Iterator[T]:
    """A tqdm bar on an interactive terminal; nothing on pods, CI or pipes (``disable=None``)."""
    disable = None if not os.environ.get("WSOVVIS_NO_PROGRESS") else True
    return iter(tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=False))
