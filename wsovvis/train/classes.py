"""The classes a model was trained on, recorded beside its checkpoints, and the check an eval-only run makes.

Training writes ``classes.json`` (the number of categories and the category list of the training JSON) into
the output folder, so it reaches ``output_uri`` with the first checkpoint. An eval-only run predicting a val
JSON with a different number of categories would build a class head of another size, and detectron2 would
drop the trained one with only a warning and score a random classifier; the harness refuses such a run before
any process starts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from wsovvis import jsonio, storage
from wsovvis.errors import InputError
from wsovvis.train.staging import LAST_CHECKPOINT, PASSTHROUGH_WEIGHT_SCHEMES

log = logging.getLogger(__name__)

CLASSES_FILE = "classes.json"


def categories(json_uri: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The ``categories`` of a YTVIS JSON (local or S3), as {id, name}, in id order."""
    data = jsonio.read_json(json_uri)
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        raise InputError(f"{json_uri}: not a YTVIS dataset with a 'categories' list")
    try:
        return sorted(
            ({"id": c["id"], "name": str(c.get("name", c["id"]))} for c in data["categories"]),
            key=lambda c: c["id"],
        )
    except (KeyError, TypeError) as exc:
        raise InputError(f"{json_uri}: a category has no 'id'") from exc


def write_record(output_dir: Path, json_path: str | os.PathLike[str], train_json: str) -> None:
    """Record the classes of the training JSON (staged at ``json_path``) in ``output_dir/classes.json``."""
    listed = categories(json_path)
    jsonio.write_json(
        output_dir / CLASSES_FILE,
        {"num_classes": len(listed), "categories": listed, "train_json": train_json},
    )


def record_for(output_uri: str, weights: str, resume: bool) -> str | None:
    """Where the record of the checkpoint an eval-only run loads would be, if there is one.

    With ``resume`` and a checkpoint in ``output_uri``, that checkpoint's; else the weights file's folder.
    """
    if resume and storage.exists(storage.join(output_uri, LAST_CHECKPOINT)):
        candidate = storage.join(output_uri, CLASSES_FILE)
    elif weights and not weights.startswith(PASSTHROUGH_WEIGHT_SCHEMES):
        candidate = storage.join(weights.rsplit("/", 1)[0] if "/" in weights else ".", CLASSES_FILE)
    else:
        return None
    return candidate if storage.exists(candidate) else None


def check_eval_classes(val_json: str, output_uri: str, weights: str, resume: bool) -> None:
    """Refuse an eval-only run whose val JSON has another number of categories than the model was trained on."""
    record_uri = record_for(output_uri, weights, resume)
    if record_uri is None:
        log.warning(
            "eval-only: no %s beside the checkpoint; cannot check that %s has the classes the model was trained on",
            CLASSES_FILE,
            val_json,
        )
        return
    record = jsonio.read_json(record_uri)
    try:
        trained = int(record["num_classes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{record_uri}: no integer 'num_classes'") from exc
    given = len(categories(val_json))
    if given != trained:
        raise InputError(
            f"data.val_json {val_json} has {given} categories, but the model was trained on {trained} "
            f"({record_uri}); evaluate on a JSON with the training categories (class-agnostic model: run "
            "`wsovvis make-agnostic` on the val GT first)"
        )
