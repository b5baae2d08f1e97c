"""Multi-scale deformable attention in pure PyTorch: the CPU path for SeqFormer's and Mask2Former's op.

Same semantics as Deformable DETR's CUDA kernel (``ms_deform_attn_forward``) and its ``ms_deform_attn_core_pytorch``:
each query samples ``P`` points per head and level by bilinear interpolation at normalised locations in [0, 1]
(pixel centre convention, ``align_corners=False``; samples outside the map read zeros), and sums them with its
attention weights. Differentiable through autograd, so it also serves training on the CPU.

This file is copied next to the runtime hook by ``wsovvis prepare``; it imports nothing but torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def level_shapes(spatial_shapes: torch.Tensor | Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """(H, W) of each level as Python ints, from the (L, 2) shapes tensor the callers pass."""
    if isinstance(spatial_shapes, torch.Tensor):
        spatial_shapes = spatial_shapes.tolist()
    return [(int(h), int(w)) for h, w in spatial_shapes]


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor | Sequence[Sequence[int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention.

    Args:
        value: (N, S, M, D) with S = sum of H*W over the levels, levels flattened row-major in order.
        spatial_shapes: (L, 2) heights and widths of the levels.
        sampling_locations: (N, Lq, M, L, P, 2) x, y in [0, 1].
        attention_weights: (N, Lq, M, L, P).

    Returns:
        (N, Lq, M*D).
    """
    n, s, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    shapes = level_shapes(spatial_shapes)
    if len(shapes) != n_levels:
        raise ValueError(f"{len(shapes)} spatial shapes for {n_levels} sampling levels")
    if sum(h * w for h, w in shapes) != s:
        raise ValueError(
            f"spatial shapes {shapes} cover {sum(h * w for h, w in shapes)} positions, value has {s}"
        )
    value_levels = value.split([h * w for h, w in shapes], dim=1)
    sampling_grids = 2 * sampling_locations - 1
    sampled = []
    for level, (h, w) in enumerate(shapes):
        # (N, H*W, M, D) -> (N*M, D, H, W)
        value_l = value_levels[level].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        # (N, Lq, M, P, 2) -> (N*M, Lq, P, 2)
        grid_l = sampling_grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        # (N*M, D, Lq, P)
        sampled.append(
            F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    # (N, Lq, M, L, P) -> (N*M, 1, Lq, L*P)
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, n_levels * n_points)
    output = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1).view(n, m * d, lq)
    return output.transpose(1, 2).contiguous()
