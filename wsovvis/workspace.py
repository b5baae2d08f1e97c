"""Where pipeline stages put their outputs: deterministic locations under a work root.

A stage's output location is derived from its inputs, not from the run id, so that a rerun with the same inputs
finds (and resumes or reuses) what an earlier run wrote, and KFP's cache keys of downstream steps stay stable.
It also holds the stage's output version, a constant beside each step (``OUTPUT_VERSION``) bumped whenever a
change makes the stage write different outputs: a rerun after such a fix then starts in a new location instead of
resuming into done-markers, tubes or a ``model_final.pth`` that the old code wrote.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from wsovvis import storage


def input_key(**inputs: Any) -> str:
    """A short, stable hash of a stage's inputs (JSON-serialisable values)."""
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stage_root(work_root: str, stage: str, version: int) -> str:
    """``<work_root>/<stage>/v<version>``: where every output of this version of the stage lies."""
    return storage.join(work_root, stage, f"v{version}")


def stage_uri(work_root: str, stage: str, version: int, **inputs: Any) -> str:
    """``<work_root>/<stage>/v<version>/<hash of inputs>``."""
    return storage.join(stage_root(work_root, stage, version), input_key(**inputs))
