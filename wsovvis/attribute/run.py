"""Attribution: each class-agnostic tube gets its top-k vocabulary categories from CLIP.

Per tube, crops of up to ``frames`` frames (:mod:`wsovvis.attribute.crops`) are embedded by CLIP's image encoder
in batches of ``batch`` crops; their normalised embeddings are averaged with mask-area weights and compared by
cosine similarity with each category's text embedding (a prompt ensemble); a softmax at CLIP's logit scale gives
p(category). Each tube is written once per top-k category with ``score = objectness^alpha * p^(1-alpha)``.
"""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from wsovvis import jsonio, rle, storage, ytvis
from wsovvis.attribute.crops import CropOptions, area_weights, make_crop, select_frames
from wsovvis.attribute.vocab import Vocabulary, prompt_name, videos_of
from wsovvis.errors import InputError, UsageError
from wsovvis.evaluate import inputs as eval_inputs
from wsovvis.evaluate.inputs import Detection, Video
from wsovvis.logs import progress

log = logging.getLogger(__name__)

# A prompt ensemble from CLIP's ImageNet templates (Radford et al. 2021, notebooks/Prompt_Engineering_for_ImageNet).
TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of one {}.",
    "a good photo of a {}.",
    "a bad photo of a {}.",
    "a close-up photo of a {}.",
    "a cropped photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
)


class Encoder(Protocol):
    """What attribution needs of CLIP; :class:`wsovvis.attribute.clip.ClipEncoder` is the real one."""

    image_size: int
    logit_scale: float

    def encode_images(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings (N x D, float32) of uint8 RGB crops (N x S x S x 3)."""

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """L2-normalised embeddings (N x D, float32) of texts."""


@dataclass(frozen=True)
class AttributeOptions:
    topk: int = 5
    alpha: float = 0.5
    frames: int = 8
    batch: int = 64
    crop: CropOptions = field(default_factory=CropOptions)
    templates: tuple[str, ...] = TEMPLATES

    def __post_init__(self) -> None:
        if self.topk < 1 or self.frames < 1 or self.batch < 1:
            raise UsageError(
                f"--topk, --frames and --batch must be >= 1, got {self.topk}, {self.frames}, {self.batch}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise UsageError(f"--alpha must be in [0, 1], got {self.alpha}")


@dataclass
class Tubes:
    """The input tubes, mapped onto the videos whose frames are read."""

    videos: dict[int, Video]
    detections: list[Detection]
    warnings: Counter[str]


def load_tubes(results: str | os.PathLike[str], vocabulary: Vocabulary) -> Tubes:
    """Tubes from a YTVIS results list or a YTVIS dataset (as ``wsovvis evaluate`` reads them).

    Frames are found through the vocabulary dataset's videos when it has them (a dataset input is matched onto
    them by frame folder, as evaluate does); otherwise a dataset input's own videos are used. A results list
    names videos only by id, so it needs a vocabulary dataset with videos.
    """
    source = os.fspath(results)
    videos = vocabulary.videos
    if videos is None:
        data = jsonio.read_json(results)
        if not (isinstance(data, dict) and "videos" in data):
            raise UsageError(
                f"{source}: a results list names its videos only by id; give --vocab as the YTVIS dataset (the GT) "
                "those ids belong to, or --results as a tube dataset with its videos"
            )
        videos = videos_of(ytvis.validate_dataset(data, source))
    warnings: Counter[str] = Counter()
    detections = eval_inputs.load_results(results, videos, warnings)
    for det in detections:
        if det.score < 0:
            raise InputError(
                f"{source}: result {det.index} (video {det.video_id}): score {det.score} is negative; the "
                "objectness in objectness^alpha * p^(1-alpha) must be >= 0"
            )
    return Tubes(videos, detections, warnings)


def _read_frame(img_root: str, video: Video, frame: int) -> np.ndarray:
    uri = storage.join(img_root, video.file_names[frame])
    data = storage.read_bytes(uri)
    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{uri}: cannot read frame ({exc})") from exc
    if array.shape[:2] != (video.height, video.width):
        raise InputError(
            f"{uri}: frame is {array.shape[0]}x{array.shape[1]}, video {video.id} and its masks are "
            f"{video.height}x{video.width} (height x width)"
        )
    return array


@dataclass
class _Crop:
    tube: int  # position in the detections list
    weight: float
    pixels: np.ndarray


def _crops(tubes: Tubes, img_root: str, size: int, options: AttributeOptions) -> Iterator[_Crop]:
    """Every tube's crops, video by video (each frame read once), tubes in input order within a video."""
    by_video: dict[int, list[int]] = {}
    for position, det in enumerate(tubes.detections):
        by_video.setdefault(det.video_id, []).append(position)
    for video_id in progress(sorted(by_video), desc="attribute", unit="video"):
        video = tubes.videos[video_id]
        plans = []
        for position in by_video[video_id]:
            det = tubes.detections[position]
            frames = select_frames(det.mask_areas, options.frames)
            if frames:
                plans.append((position, frames, area_weights(det.mask_areas, frames)))
        images = {f: _read_frame(img_root, video, f) for f in sorted({f for _, fs, _ in plans for f in fs})}
        for position, frames, weights in plans:
            det = tubes.detections[position]
            for frame, weight in zip(frames, weights, strict=True):
                mask = rle.decode(det.segmentations[frame]).astype(bool)
                crop = make_crop(images[frame], mask, size, options.crop)
                if crop is not None:
                    yield _Crop(position, float(weight), crop)


def tube_embeddings(
    tubes: Tubes, img_root: str, encoder: Encoder, dim: int, options: AttributeOptions
) -> tuple[np.ndarray, int]:
    """Mask-area-weighted mean of each tube's crop embeddings, normalised (a row of zeros for a tube without a
    mask), and the number of crops embedded.

    Crops are embedded ``options.batch`` at a time; the sums run over crops in the same order whatever the batch.
    """
    sums = np.zeros((len(tubes.detections), dim), dtype=np.float64)
    count = 0
    pending: list[_Crop] = []

    def flush() -> None:
        embeddings = encoder.encode_images(np.stack([c.pixels for c in pending]))
        for crop, embedding in zip(pending, embeddings, strict=True):
            sums[crop.tube] += crop.weight * embedding.astype(np.float64)
        pending.clear()

    for crop in _crops(tubes, img_root, encoder.image_size, options):
        pending.append(crop)
        count += 1
        if len(pending) == options.batch:
            flush()
    if pending:
        flush()
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0), count


def class_probabilities(
    tube_embeddings: np.ndarray, text_embeddings: np.ndarray, logit_scale: float
) -> np.ndarray:
    """Softmax over the vocabulary of ``logit_scale`` x cosine similarity (tubes x categories)."""
    logits = logit_scale * (tube_embeddings @ text_embeddings.astype(np.float64).T)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def top_k_results(
    detections: list[Detection],
    has_embedding: np.ndarray,
    probabilities: np.ndarray,
    category_ids: list[int],
    options: AttributeOptions,
) -> Iterator[dict[str, Any]]:
    """Each tube once per top-k category (by p, then vocabulary order), masks as they came."""
    k = min(options.topk, probabilities.shape[1])
    for row, det in enumerate(detections):
        if not has_embedding[row]:
            continue
        p = probabilities[row]
        for column in np.argsort(-p, kind="stable")[:k]:
            yield {
                "video_id": det.video_id,
                "score": float(det.score**options.alpha * float(p[column]) ** (1.0 - options.alpha)),
                "category_id": category_ids[column],
                "segmentations": [
                    None if seg is None else {"size": list(seg.size), "counts": seg.counts}
                    for seg in det.segmentations
                ],
            }


def text_prompts(vocabulary: Vocabulary, templates: tuple[str, ...]) -> list[list[str]]:
    return [[t.format(prompt_name(name)) for t in templates] for name in vocabulary.names]


@dataclass(frozen=True)
class AttributeSummary:
    num_tubes: int
    num_tubes_without_mask: int
    num_crops: int
    num_results: int
    warnings: dict[str, int]


def attribute_tubes(
    tubes: Tubes,
    img_root: str,
    vocabulary: Vocabulary,
    text_embeddings: np.ndarray,
    encoder: Encoder,
    options: AttributeOptions,
    out: str | os.PathLike[str],
) -> AttributeSummary:
    """Embed the tubes, score them against the vocabulary and write the results list to ``out`` atomically."""
    embeddings, num_crops = tube_embeddings(tubes, img_root, encoder, text_embeddings.shape[1], options)
    has_embedding = np.linalg.norm(embeddings, axis=1) > 0
    probabilities = class_probabilities(embeddings, text_embeddings, encoder.logit_scale)
    written = ytvis.write_results(
        out, top_k_results(tubes.detections, has_embedding, probabilities, vocabulary.ids, options)
    )
    return AttributeSummary(
        num_tubes=len(tubes.detections),
        num_tubes_without_mask=int((~has_embedding).sum()),
        num_crops=num_crops,
        num_results=written,
        warnings=dict(sorted(tubes.warnings.items())),
    )
