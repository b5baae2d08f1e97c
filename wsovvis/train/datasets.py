"""YTVIS datasets as detectron2 dataset dicts, read by the project's own reader (:mod:`wsovvis.ytvis`).

The dicts are the ones VNext's ``load_ytvis_json`` (``seqformer/data/datasets/ytvis.py``) produces, without
its dependency on ``pycocotools.ytvos`` (absent from PyPI's pycocotools, broken under numpy 2): one record
per video, sorted by video id, with ``file_names`` joined to the image root, ``height``, ``width``,
``length``, ``video_id`` and ``annotations`` as one list per frame of objects {iscrowd, category_id
(contiguous, 0-based), id, bbox (XYWH), bbox_mode, segmentation (compressed RLE)}. A frame where an object
has no box or no mask is left out for that object, as VNext does.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsovvis import ytvis

log = logging.getLogger(__name__)

BOX_MODE_XYWH_ABS = 1  # detectron2.structures.BoxMode.XYWH_ABS
_ANNOTATION_KEYS = ("iscrowd", "category_id", "id")


@dataclass(frozen=True)
class StagedDataset:
    """A registered dataset: its name and the local copies of its JSON and frames."""

    name: str
    json_path: Path
    image_root: Path


def category_mapping(data: dict[str, Any]) -> tuple[list[str], dict[int, int]]:
    """Class names in id order and the map from dataset category id to contiguous id (0-based)."""
    categories = sorted(data.get("categories", []), key=lambda c: c["id"])
    names = [str(c.get("name", c["id"])) for c in categories]
    return names, {c["id"]: index for index, c in enumerate(categories)}


def dataset_dicts(data: dict[str, Any], image_root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Detectron2 dataset dicts for a loaded (validated) YTVIS dataset."""
    from pycocotools import mask as mask_util

    _, id_map = category_mapping(data)
    by_video: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ann in data.get("annotations", []):
        by_video[ann["video_id"]].append(ann)
    root = os.fspath(image_root)
    records = []
    for video in sorted(data["videos"], key=lambda v: v["id"]):
        length = video["length"]
        frames: list[list[dict[str, Any]]] = []
        for frame in range(length):
            objects = []
            for ann in by_video.get(video["id"], []):
                boxes, segms = ann.get("bboxes"), ann.get("segmentations")
                if not (boxes and segms and boxes[frame] and segms[frame]):
                    continue
                obj = {key: ann[key] for key in _ANNOTATION_KEYS if key in ann}
                obj["bbox"] = boxes[frame]
                obj["bbox_mode"] = BOX_MODE_XYWH_ABS
                segm = segms[frame]
                if isinstance(segm["counts"], list):
                    segm = mask_util.frPyObjects(segm, *segm["size"])
                obj["segmentation"] = segm
                obj["category_id"] = id_map[ann["category_id"]]
                objects.append(obj)
            frames.append(objects)
        records.append(
            {
                "file_names": [os.path.join(root, name) for name in video["file_names"]],
                "height": video["height"],
                "width": video["width"],
                "length": length,
                "video_id": video["id"],
                "annotations": frames,
            }
        )
    return records


def load_dataset_dicts(dataset: StagedDataset) -> list[dict[str, Any]]:
    data = ytvis.load_dataset(dataset.json_path)
    records = dataset_dicts(data, dataset.image_root)
    log.info("loaded %d videos from %s as %s", len(records), dataset.json_path, dataset.name)
    return records


def register_detectron2(dataset: StagedDataset) -> None:
    """Register ``dataset`` in detectron2's DatasetCatalog/MetadataCatalog (replacing an earlier entry)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    data = ytvis.load_dataset(dataset.json_path)
    names, id_map = category_mapping(data)
    if dataset.name in DatasetCatalog.list():
        DatasetCatalog.remove(dataset.name)
        MetadataCatalog.remove(dataset.name)
    DatasetCatalog.register(dataset.name, lambda: load_dataset_dicts(dataset))
    MetadataCatalog.get(dataset.name).set(
        json_file=os.fspath(dataset.json_path),
        image_root=os.fspath(dataset.image_root),
        evaluator_type="ytvis",
        thing_classes=names,
        thing_dataset_id_to_contiguous_id=id_map,
    )


def num_categories(json_path: str | os.PathLike[str]) -> int:
    return len(ytvis.load_dataset(json_path).get("categories", []))
