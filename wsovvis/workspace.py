"""Where pipeline stages put their outputs: deterministic locations under a work root.

A stage's output location is derived from its inputs, not from the run id, so that a rerun with the same inputs
finds (and resumes or reuses) what an earlier run wrote, and KFP's cache keys of downstream steps stay stable.
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


def stage_uri(work_root: str, stage: str, **inputs: Any) -> str:
    """``<work_root>/<stage>/<hash of inputs>``."""
    return storage.join(work_root, stage, input_key(**inputs))
