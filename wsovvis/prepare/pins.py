"""The upstream pins in ``third_party/pins.json``: which commit of CutLER, VNext and detectron2 the runtime uses."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wsovvis.errors import UsageError

PINS_JSON = Path(__file__).resolve().parents[2] / "third_party" / "pins.json"
PIN_FIELDS = ("url", "commit", "ref", "purpose")


@dataclass(frozen=True)
class Pin:
    name: str
    url: str
    commit: str
    ref: str
    purpose: str


def load_pins(path: str | os.PathLike[str] | None = None) -> dict[str, Pin]:
    """Read the pins (``WSOVVIS_PINS`` or the repository's ``third_party/pins.json``), rejecting unknown keys."""
    path = Path(path or os.environ.get("WSOVVIS_PINS") or PINS_JSON)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the upstream pins {path}: {exc}") from exc
    pins = {}
    for name, entry in data.items():
        unknown = sorted(set(entry) - set(PIN_FIELDS))
        absent = sorted(set(PIN_FIELDS) - set(entry))
        if unknown or absent:
            raise UsageError(f"{path}: pin {name!r} has unknown keys {unknown} / lacks {absent}")
        if len(entry["commit"]) != 40:
            raise UsageError(f"{path}: pin {name!r} commit {entry['commit']!r} is not a full 40-hex SHA")
        pins[name] = Pin(name=name, **entry)
    return pins


def checkout_commit(tree: Path) -> str | None:
    """HEAD of ``tree`` when it is a git checkout (a submodule included), else None."""
    if not (tree / ".git").exists():
        return None
    out = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() if out.returncode == 0 else None
