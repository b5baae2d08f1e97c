"""CLIP through open_clip: the model from a name (or a config JSON) and weights from a path or S3, no model hub.

open_clip's own ``pretrained=`` resolves tags by downloading from model hubs; here the architecture is created
without weights and the checkpoint is loaded with ``open_clip.load_checkpoint`` from a local file, so nothing is
fetched at run time but the weights from the given location (S3 weights are downloaded once into a local cache).
Text embeddings of a vocabulary are cached on storage, keyed by model, weights digest, names and templates.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsovvis import storage
from wsovvis.errors import InputError, RuntimeMissingError, UsageError

log = logging.getLogger(__name__)

TEXT_BATCH = 256
_HUB_SCHEMAS = ("hf-hub:", "local-dir:")


def default_cache_dir() -> Path:
    """``$WSOVVIS_CACHE`` or ``~/.cache/wsovvis``: downloaded weights and the CLI's text-embedding cache."""
    return Path(os.environ.get("WSOVVIS_CACHE") or Path.home() / ".cache" / "wsovvis")


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Weights:
    uri: str  # as given (--clip_weights)
    path: Path  # local file
    sha256: str


def fetch_weights(uri: str, cache_dir: str | os.PathLike[str]) -> Weights:
    """The weights file: a local path as it is, an S3 object downloaded once into ``<cache_dir>/clip-weights``."""
    if not uri:
        raise UsageError("--clip_weights is empty: give the CLIP checkpoint as a local path or an s3:// URI")
    if storage.is_remote(uri):
        key = hashlib.sha256(uri.encode()).hexdigest()[:16]
        path = Path(cache_dir) / "clip-weights" / key / storage.basename(uri)
        if path.exists():
            log.info("CLIP weights %s: cached at %s", uri, path)
        else:
            try:
                storage.download(uri, path)
            except storage.StorageNotFoundError as exc:
                raise InputError(f"--clip_weights {uri}: does not exist") from exc
            log.info("CLIP weights %s: downloaded to %s", uri, path)
    else:
        path = storage.local_path(uri)
        if not path.is_file():
            raise InputError(f"--clip_weights {uri}: no such file")
    return Weights(uri, path, sha256_of(path))


@contextlib.contextmanager
def _root_logging_quiet() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _line(exc: BaseException) -> str:
    """The first informative line of an exception's message (torch's load errors span many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = next(
        (line for line in lines if not line.startswith("Error(s) in loading")), lines[0] if lines else ""
    )
    return detail[:200]


def _import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise RuntimeMissingError(
            f"attribute needs open_clip (pip install 'wsovvis[attribute]'): {exc}"
        ) from exc
    return open_clip


def _register_config(model: str, cache_dir: str | os.PathLike[str], open_clip: Any) -> str:
    """A model config JSON (path or S3) registered with open_clip under its file stem; returns that name."""
    name = Path(storage.basename(model)).stem
    try:
        config = json.loads(storage.read_bytes(model))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"--clip_model {model}: not a JSON model config ({exc})") from exc
    except storage.StorageNotFoundError as exc:
        raise InputError(f"--clip_model {model}: no such model config") from exc
    if not isinstance(config, dict) or not all(k in config for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise InputError(
            f"--clip_model {model}: an open_clip model config needs 'embed_dim', 'vision_cfg' and 'text_cfg'"
        )
    text = json.dumps(config, sort_keys=True)
    folder = Path(cache_dir) / "clip-configs" / hashlib.sha256(text.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    storage.write_text(folder / f"{name}.json", text)
    open_clip.add_model_config(folder / f"{name}.json")
    return name


def model_identity(model: str) -> str:
    """What names the architecture in cache keys: the model name, or a config JSON's content digest."""
    if model.endswith(".json"):
        return "config-sha256:" + hashlib.sha256(storage.read_bytes(model)).hexdigest()
    return model


class ClipEncoder:
    """An open_clip CLIP model in eval mode: images (uint8 crops) and texts to L2-normalised embeddings."""

    def __init__(self, model: str, weights: Weights, device: str, cache_dir: str | os.PathLike[str]) -> None:
        open_clip = _import_open_clip()
        import torch

        if model.startswith(_HUB_SCHEMAS):
            raise UsageError(
                f"--clip_model {model}: model-hub names are not used here (no download at run time); give an "
                "open_clip model name or a model config JSON, and the weights with --clip_weights"
            )
        if device == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda: torch sees no CUDA device here; use --device cpu")
        name = _register_config(model, cache_dir, open_clip) if model.endswith(".json") else model
        config = open_clip.get_model_config(name)
        if config is None:
            raise UsageError(
                f"--clip_model {model}: open_clip knows no such model (e.g. ViT-B-32, ViT-B-16, ViT-L-14, "
                "convnext_base_w); or give a model config JSON"
            )
        text_cfg = config.get("text_cfg", {})
        if text_cfg.get("hf_tokenizer_name") or text_cfg.get("hf_model_name") or "siglip" in name.lower():
            raise UsageError(
                f"--clip_model {model}: its text tower or tokenizer comes from a model hub, which attribution "
                "does not download; use a CLIP model with open_clip's own tokenizer (e.g. ViT-B-32)"
            )
        self.model_name = model
        self.weights = weights
        self.device = device
        self._torch = torch
        from open_clip.factory import load_state_dict

        # open_clip logs its steps, and "initialized randomly" before the weights are loaded, on the root logger
        with _root_logging_quiet():
            net = open_clip.create_model(name, pretrained=None, device="cpu")
        try:
            load_state_dict(str(weights.path))
        except Exception as exc:  # torch.load's errors for what is not a checkpoint vary by format
            raise InputError(
                f"--clip_weights {weights.uri}: not a loadable checkpoint ({type(exc).__name__}: {_line(exc)})"
            ) from exc
        try:
            open_clip.load_checkpoint(net, str(weights.path))
        except RuntimeError as exc:
            raise InputError(
                f"--clip_weights {weights.uri}: these weights do not fit --clip_model {model} ({_line(exc)})"
            ) from exc
        self.net = net.to(device).eval()
        preprocess = open_clip.get_model_preprocess_cfg(net)
        size = preprocess["size"]
        self.image_size = int(size if isinstance(size, int) else size[0])
        self._mean = torch.tensor(preprocess["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocess["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.logit_scale = float(net.logit_scale.exp().item())
        with _root_logging_quiet():
            self._tokenizer = open_clip.get_tokenizer(name)

    def encode_images(self, crops: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            pixels = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
            pixels = pixels.permute(0, 3, 1, 2).float().div_(255.0)
            pixels = (pixels - self._mean) / self._std
            return self.net.encode_image(pixels, normalize=True).float().cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            tokens = self._tokenizer(texts).to(self.device)
            return self.net.encode_text(tokens, normalize=True).float().cpu().numpy()


def _ensemble(encoder: Any, prompts: list[list[str]]) -> np.ndarray:
    """Per category: the normalised mean of its prompts' normalised text embeddings (float32, C x D)."""
    flat = [text for group in prompts for text in group]
    chunks = [encoder.encode_texts(flat[i : i + TEXT_BATCH]) for i in range(0, len(flat), TEXT_BATCH)]
    embeddings = np.concatenate(chunks).astype(np.float64)
    out, start = [], 0
    for group in prompts:
        mean = embeddings[start : start + len(group)].mean(axis=0)
        out.append(mean / np.linalg.norm(mean))
        start += len(group)
    return np.stack(out).astype(np.float32)


def text_cache_key(model: str, weights_sha256: str, prompts: list[list[str]]) -> str:
    blob = json.dumps({"model": model, "weights": weights_sha256, "prompts": prompts}, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def text_embeddings(
    encoder: Any, prompts: list[list[str]], cache_root: str, key: str
) -> tuple[np.ndarray, str]:
    """Ensembled text embeddings (C x D), read from ``<cache_root>/<key>.npy`` when there, else computed and
    stored there; also returns that location."""
    uri = storage.join(cache_root, f"{key}.npy")
    if storage.exists(uri):
        cached = np.load(io.BytesIO(storage.read_bytes(uri)), allow_pickle=False)
        if cached.ndim == 2 and cached.shape[0] == len(prompts):
            log.info("text embeddings: %d categories from the cache %s", len(prompts), uri)
            return cached, uri
        log.warning(
            "text embeddings: %s has shape %s, not %d rows; recomputing", uri, cached.shape, len(prompts)
        )
    embeddings = _ensemble(encoder, prompts)
    buffer = io.BytesIO()
    np.save(buffer, embeddings, allow_pickle=False)
    storage.write_bytes(uri, buffer.getvalue())
    log.info("text embeddings: %d categories computed, cached at %s", len(prompts), uri)
    return embeddings, uri
