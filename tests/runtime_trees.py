"""Where the runtime tests find the CutLER / VNext / detectron2 v0.6 trees (one rule for every runtime test).

Per tree, the first of: ``$WSOVVIS_<NAME>_DIR``; ``$WSOVVIS_THIRD_PARTY_DIR/<Name>`` (the folder the image
build takes, README); the checkout's ``third_party/<Name>`` submodule when it is populated; the tree the running
interpreter's runtime was prepared with (``wsovvis_runtime/runtime.json`` in its site-packages, written by
``wsovvis prepare``). Without any of them, ``third_party/<Name>``, which the tests then name as absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from wsovvis.prepare.runtime import PACKAGE, default_site_packages

ROOT = Path(__file__).resolve().parents[1]
TREES = {"cutler": "CutLER", "vnext": "VNext", "detectron2": "detectron2"}


def env_var(name: str) -> str:
    return f"WSOVVIS_{name.upper()}_DIR"


def _prepared() -> dict[str, str]:
    try:
        config = json.loads((default_site_packages() / PACKAGE / "runtime.json").read_text())
    except (OSError, ValueError):
        return {}
    sources = config.get("sources") if isinstance(config, dict) else None
    return {k: v for k, v in sources.items() if isinstance(v, str)} if isinstance(sources, dict) else {}


def source_dirs() -> dict[str, str]:
    """``{"cutler": ..., "vnext": ..., "detectron2": ...}``, each a path (which may not exist)."""
    prepared = _prepared()
    third_party = os.environ.get("WSOVVIS_THIRD_PARTY_DIR")
    dirs = {}
    for name, folder in TREES.items():
        submodule = ROOT / "third_party" / folder
        if os.environ.get(env_var(name)):
            dirs[name] = os.environ[env_var(name)]
        elif third_party:
            dirs[name] = str(Path(third_party) / folder)
        elif submodule.is_dir() and any(submodule.iterdir()):
            dirs[name] = str(submodule)
        else:
            dirs[name] = prepared.get(name, str(submodule))
    return dirs
