"""A tiny open_clip CLIP with random weights, written to disk as a model config JSON and a checkpoint.

No weights come from a model hub: the architecture is a config in open_clip's format (a ViT with one block and
32-pixel images, the real tokenizer's vocabulary), the weights a seeded random initialisation.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_tiny_model(folder: Path, name: str = "wsovvis-tiny-clip", seed: int = 0) -> tuple[Path, Path]:
    """(config JSON, checkpoint) of a tiny random CLIP under ``folder``."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{name}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    weights = folder / f"{name}.pt"
    torch.save(model.state_dict(), weights)
    return config, weights
