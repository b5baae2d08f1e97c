"""The pure-PyTorch deformable attention against a naive per-sample bilinear reference."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed in this environment")

from wsovvis.prepare.msda import ms_deform_attn  # noqa: E402


def bilinear_zero_padded(feature: list[list[float]], x: float, y: float) -> float:
    """Sample an H x W map at pixel coordinates (x, y) (pixel centres at integers), zeros outside."""
    h, w = len(feature), len(feature[0])
    x0, y0 = math.floor(x), math.floor(y)
    total = 0.0
    for yy, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
        for xx, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                total += wy * wx * feature[yy][xx]
    return total


def naive_ms_deform_attn(value, shapes, locations, weights):
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = locations.shape
    starts = [0]
    for h, w in shapes[:-1]:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(n, lq, m * d, dtype=torch.float64)
    for b in range(n):
        for q in range(lq):
            for head in range(m):
                for c in range(d):
                    acc = 0.0
                    for level, (h, w) in enumerate(shapes):
                        level_map = (
                            value[b, starts[level] : starts[level] + h * w, head, c].reshape(h, w).tolist()
                        )
                        for p in range(n_points):
                            lx, ly = locations[b, q, head, level, p].tolist()
                            sample = bilinear_zero_padded(level_map, lx * w - 0.5, ly * h - 0.5)
                            acc += float(weights[b, q, head, level, p]) * sample
                    out[b, q, head * d + c] = acc
    return out


def random_inputs(seed: int, shapes: list[tuple[int, int]], n=2, m=2, d=3, lq=4, p=3, spread=1.0):
    generator = torch.Generator().manual_seed(seed)
    s = sum(h * w for h, w in shapes)
    value = torch.rand(n, s, m, d, generator=generator, dtype=torch.float64)
    # spread > 1 puts some samples outside [0, 1], where the op must read zeros
    locations = (
        torch.rand(n, lq, m, len(shapes), p, 2, generator=generator, dtype=torch.float64) - 0.5
    ) * spread + 0.5
    weights = torch.rand(n, lq, m, len(shapes), p, generator=generator, dtype=torch.float64)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    return value, locations, weights


@pytest.mark.parametrize(
    ("seed", "shapes", "spread"),
    [(0, [(4, 5)], 1.0), (1, [(6, 6), (3, 3)], 1.0), (2, [(5, 3), (3, 2), (1, 1)], 1.6)],
)
def test_matches_naive_bilinear_reference(seed, shapes, spread):
    value, locations, weights = random_inputs(seed, shapes, spread=spread)
    shapes_tensor = torch.tensor(shapes, dtype=torch.long)
    got = ms_deform_attn(value, shapes_tensor, locations, weights)
    want = naive_ms_deform_attn(value, shapes, locations, weights)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_accepts_shapes_as_python_lists():
    value, locations, weights = random_inputs(3, [(4, 4), (2, 2)])
    from_list = ms_deform_attn(value, [[4, 4], [2, 2]], locations, weights)
    from_tensor = ms_deform_attn(value, torch.tensor([[4, 4], [2, 2]]), locations, weights)
    torch.testing.assert_close(from_list, from_tensor)


def test_gradients_match_finite_differences():
    value, locations, weights = random_inputs(4, [(3, 3), (2, 2)], n=1, m=1, d=2, lq=2, p=2)
    # keep samples away from pixel-centre grid lines, where bilinear interpolation has kinks
    locations = locations * 0.9 + 0.05
    inputs = (value.requires_grad_(), locations.requires_grad_(), weights.requires_grad_())
    assert torch.autograd.gradcheck(
        lambda v, loc, w: ms_deform_attn(v, [[3, 3], [2, 2]], loc, w), inputs, eps=1e-6, atol=1e-5
    )


def test_rejects_shapes_that_do_not_cover_value():
    value, locations, weights = random_inputs(5, [(4, 4)])
    with pytest.raises(ValueError, match="cover"):
        ms_deform_attn(value, [[4, 3]], locations, weights)
