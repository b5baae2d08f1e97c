"""Logging set-up (once, by the CLI) and progress: a bar on a terminal, a steady log line in pods."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

# Seconds between progress lines where no terminal shows a bar (a pod's log); WSOVVIS_PROGRESS_SECONDS changes it.
PROGRESS_SECONDS = 30.0

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Handler(logging.StreamHandler):
    """stderr, where a line never shares the terminal's line with a tqdm bar: while bars are drawn, they are
    cleared for the line and drawn again below it (tqdm's ``external_write_mode``)."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm_module = sys.modules.get("tqdm")  # loaded only where progress() drew a bar
        if tqdm_module is None or not getattr(tqdm_module.tqdm, "_instances", None):
            super().emit(record)
            return
        with tqdm_module.tqdm.external_write_mode(file=self.stream):
            super().emit(record)


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the root logger once; later calls only change the level."""
    root = logging.getLogger()
    if not any(getattr(h, "_wsovvis", False) for h in root.handlers):
        handler = _Handler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        handler._wsovvis = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


def progress(
    iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it"
) -> Iterator[T]:
    """A tqdm bar on an interactive terminal; elsewhere (pods, CI, pipes, or ``WSOVVIS_NO_PROGRESS`` set) one log
    line every ``WSOVVIS_PROGRESS_SECONDS`` (default 30) and one at the end, so a long step is never silent."""
    if sys.stderr.isatty() and not os.environ.get("WSOVVIS_NO_PROGRESS"):
        from tqdm import tqdm  # only here: importing it costs ~50 ms, which every command would pay

        return iter(tqdm(iterable, total=total, desc=desc, unit=unit, leave=False))
    return _logged(iterable, total, desc or "progress", unit)


def _logged(iterable: Iterable[T], total: int | None, desc: str, unit: str) -> Iterator[T]:
    every = float(os.environ.get("WSOVVIS_PROGRESS_SECONDS") or PROGRESS_SECONDS)
    of_total = f"/{total}" if total is not None else ""
    started = last = time.monotonic()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every:
            last = now
            noun = plural(total if total is not None else done, unit)
            log.info("%s: %d%s %s (%.2f %s/s)", desc, done, of_total, noun, done / (now - started), unit)
    elapsed = time.monotonic() - started
    log.info(
        "%s: %d%s %s in %.1fs",
        desc,
        done,
        of_total,
        plural(total if total is not None else done, unit),
        elapsed,
    )


def plural(count: int, noun: str) -> str:
    """``noun`` as it goes with ``count``: "1 video", "3 videos" (a noun already ending in s, or "it", is kept)."""
    return noun if count == 1 or noun.endswith("s") or noun == "it" else noun + "s"
