"""Backend ``videocutler``: CutLER's VideoCutLER (Video Mask2Former, class-agnostic) run in-process.

The model is built the way VideoCutLER's ``demo_video`` builds it (detectron2 config with the DeepLab,
Mask2Former and video Mask2Former additions, the test-time shortest-edge resize, ``cfg.INPUT.FORMAT``) and
returns, per clip, its top-10 queries (unsorted) with a score and a mask per frame at the original frame size.
Unlike the demo, the scores are kept, and no visualisation is drawn.

Instances scoring at least ``confidence`` are kept in the model's order and numbered 1..n; later instances
overwrite earlier ones where they overlap (the demo's encoding). Videos longer than ``window`` frames run in
windows that overlap by ``overlap`` frames: a window's instance continues the earlier instance whose masks on
the shared frames have the highest video IoU (at least ``STITCH_IOU``), else it gets the next free number; a
frame takes its masks from the first window that covers it; an instance's score is the frame-weighted mean of
its windows' scores.

The runtime (torch, detectron2 with ``projects.deeplab``, CutLER's ``videocutler`` folder) is imported on
first use; without it the backend fails with one RuntimeMissingError line.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsovvis import storage
from wsovvis.errors import RuntimeMissingError, UsageError
from wsovvis.maskgen.backend import MAX_INSTANCES, VideoPrediction, paint

log = logging.getLogger(__name__)

CUTLER_DIR_ENV = "WSOVVIS_CUTLER_DIR"
DEFAULT_CONFIG = "videocutler/configs/imagenet_video/video_mask2former_R50_cls_agnostic.yaml"
STITCH_IOU = 0.5


@dataclass(frozen=True)
class VideoCutlerOptions:
    cutler_dir: str | None = (
        None  # CutLER checkout; default $WSOVVIS_CUTLER_DIR, else where CutLER imports from
    )
    config_file: str | None = None  # default <cutler_dir>/DEFAULT_CONFIG
    weights: str | None = None  # .pth path or s3:// URI; None = random initialisation (tests only)
    confidence: float = 0.6
    device: str = "cuda"
    window: int = 80  # frames per forward pass (Video Mask2Former runs out of GPU memory past ~100)
    overlap: int = 8
    opts: tuple[str, ...] = ()  # extra detectron2 config KEY VALUE pairs


@dataclass
class _Clip:
    start: int
    scores: list[float]
    masks: list[np.ndarray]  # per kept instance: (frames, H, W) bool


def _video_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.logical_or(a, b).sum())
    return int(np.logical_and(a, b).sum()) / union if union else 0.0


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start frames of the windows covering ``length`` frames (one window when the video fits)."""
    if length <= window:
        return [0]
    step = window - overlap
    starts = list(range(0, length - window, step))
    return [*starts, length - window]


class VideoCutlerBackend:
    name = "videocutler"

    def __init__(self, options: VideoCutlerOptions) -> None:
        if not 0 <= options.overlap < options.window:
            raise UsageError(
                f"videocutler: need 0 <= overlap < window, got overlap {options.overlap}, window {options.window}"
            )
        self.options = options
        self._predictor: Any = None
        self._scratch = tempfile.TemporaryDirectory(prefix="wsovvis-videocutler-")

    def settings(self) -> dict[str, Any]:
        settings = asdict(self.options)
        settings.pop("cutler_dir")
        settings.pop("device")
        settings["opts"] = list(self.options.opts)
        return {"backend": self.name, **settings}

    # ------------------------------------------------------------------------------------------ model

    def _cutler_dir(self) -> Path:
        text = self.options.cutler_dir or os.environ.get(CUTLER_DIR_ENV)
        if text:
            path = Path(text)
        else:  # a runtime image may make CutLER importable already: find its checkout from there
            try:
                import mask2former_video
            except ImportError as exc:
                raise RuntimeMissingError(
                    f"videocutler backend: no CutLER checkout; pass --cutler_dir or set {CUTLER_DIR_ENV} "
                    f"(mask2former_video is not importable either: {exc})"
                ) from exc
            path = Path(mask2former_video.__file__).resolve().parents[2]
        if not (path / "videocutler" / "mask2former_video").is_dir():
            raise RuntimeMissingError(
                f"videocutler backend: {path} is not a CutLER checkout (no videocutler/mask2former_video)"
            )
        return path

    def _load(self) -> Any:
        cutler = self._cutler_dir()
        if str(cutler / "videocutler") not in sys.path:
            sys.path.insert(0, str(cutler / "videocutler"))
        try:
            import detectron2.data.transforms as transforms
            import torch
            from detectron2.checkpoint import DetectionCheckpointer
            from detectron2.config import get_cfg
            from detectron2.modeling import build_model
            from detectron2.projects.deeplab import add_deeplab_config
            from mask2former import add_maskformer2_config
            from mask2former_video import add_maskformer2_video_config
        except ImportError as exc:
            raise RuntimeMissingError(
                f"videocutler backend: cannot import {exc.name or exc} ({exc}); it needs the patched CutLER runtime "
                "(torch, detectron2 v0.6 with projects.deeplab, CutLER's videocutler)"
            ) from exc
        config_file = Path(self.options.config_file or cutler / DEFAULT_CONFIG)
        if not config_file.is_file():
            raise UsageError(f"videocutler backend: config {config_file} does not exist")
        cfg = get_cfg()
        add_deeplab_config(cfg)
        add_maskformer2_config(cfg)
        add_maskformer2_video_config(cfg)
        cfg.merge_from_file(str(config_file))
        cfg.merge_from_list(list(self.options.opts))
        cfg.MODEL.DEVICE = self.options.device
        cfg.MODEL.WEIGHTS = ""
        cfg.freeze()
        model = build_model(cfg)
        model.eval()
        if self.options.weights:
            weights = self.options.weights
            if storage.is_remote(weights):
                weights = str(storage.download(weights, Path(self._scratch.name) / storage.basename(weights)))
            DetectionCheckpointer(model).load(weights)
        else:
            log.warning(
                "videocutler backend: no weights given, the model is randomly initialised (tests only)"
            )
        resize = transforms.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        return torch, model, resize, cfg.INPUT.FORMAT

    # ------------------------------------------------------------------------------------------ inference

    def _run_clip(self, frames: Sequence[np.ndarray]) -> tuple[list[float], list[np.ndarray]]:
        """Kept instances (score >= confidence, model order) of one clip: scores and (frames, H, W) masks."""
        if self._predictor is None:
            self._predictor = self._load()
        torch, model, resize, input_format = self._predictor
        height, width = frames[0].shape[:2]
        images = []
        for rgb in frames:
            image = rgb if input_format == "RGB" else rgb[:, :, ::-1]
            image = resize.get_transform(image).apply_image(image)
            images.append(torch.as_tensor(np.ascontiguousarray(image.astype("float32").transpose(2, 0, 1))))
        use_amp = self.options.device.startswith("cuda")
        with torch.no_grad(), torch.autocast("cuda", enabled=use_amp):
            output = model([{"image": images, "height": height, "width": width}])
        scores, masks = [], []
        for score, mask in zip(output["pred_scores"], output["pred_masks"], strict=True):
            if float(score) >= self.options.confidence:
                scores.append(float(score))
                masks.append(mask.cpu().numpy().astype(bool))
        return scores, masks

    def predict(self, frames: Sequence[np.ndarray]) -> VideoPrediction:
        height, width = frames[0].shape[:2]
        index_maps = [np.zeros((height, width), np.uint8) for _ in frames]
        frame_weighted: list[float] = []  # per global instance: sum of score x frames
        frame_counts: list[int] = []
        previous: _Clip | None = None
        previous_ids: list[int] = []
        written_until = 0
        for start in window_starts(len(frames), self.options.window, self.options.overlap):
            end = min(start + self.options.window, len(frames))
            scores, masks = self._run_clip(frames[start:end])
            ids = self._stitch(previous, previous_ids, start, masks, len(frame_counts))
            kept = [(i, s, m) for i, s, m in zip(ids, scores, masks, strict=True) if i]
            for instance_id, score, _ in kept:
                if instance_id > len(frame_counts):
                    frame_weighted.append(0.0)
                    frame_counts.append(0)
                frame_weighted[instance_id - 1] += score * (end - start)
                frame_counts[instance_id - 1] += end - start
            for frame in range(written_until, end):
                paint(index_maps[frame], [m[frame - start] for _, _, m in kept], [i for i, _, _ in kept])
            written_until = end
            previous, previous_ids = _Clip(start, scores, masks), ids
        final_scores = [round(w / n, 6) for w, n in zip(frame_weighted, frame_counts, strict=True)]
        return VideoPrediction(index_maps, final_scores)

    @staticmethod
    def _stitch(
        previous: _Clip | None, previous_ids: list[int], start: int, masks: list[np.ndarray], used: int
    ) -> list[int]:
        """Global ids for a clip's instances: continue the best-overlapping instance of the previous window
        (0: dropped, the video already has MAX_INSTANCES instances)."""
        ids: list[int | None] = [None] * len(masks)
        if previous is not None:
            shared = previous.masks[0].shape[0] - (start - previous.start) if previous.masks else 0
            pairs = sorted(
                (
                    (_video_iou(old[start - previous.start :], new[:shared]), i, j)
                    for i, old in enumerate(previous.masks)
                    for j, new in enumerate(masks)
                ),
                key=lambda p: (-p[0], p[1], p[2]),
            )
            taken: set[int] = set()
            for overlap, i, j in pairs:
                if overlap < STITCH_IOU:
                    break
                if i in taken or ids[j] is not None:
                    continue
                ids[j] = previous_ids[i]
                taken.add(i)
        result = []
        for instance_id in ids:
            if instance_id is None:
                if used >= MAX_INSTANCES:
                    log.warning(
                        "videocutler backend: more than %d instances in one video; dropping the rest",
                        MAX_INSTANCES,
                    )
                    result.append(0)
                    continue
                used += 1
                instance_id = used
            result.append(instance_id)
        return result
