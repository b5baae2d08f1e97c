"""One-pass index-map encoding agrees with pycocotools' per-mask encoding."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from wsovvis import rle


@pytest.mark.parametrize("seed", range(8))
def test_encode_index_map_matches_per_instance_encoding(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 40, size=2)
    index_map = rng.integers(0, 5, size=(height, width)).astype(np.uint8)
    if seed % 2:
        index_map[:, : width // 2] = 0  # long background runs
    encoded = rle.encode_index_map(index_map)
    assert sorted(encoded) == sorted(int(v) for v in np.unique(index_map) if v)
    for value, got in encoded.items():
        want = mask_utils.encode(np.asfortranarray((index_map == value).astype(np.uint8)))
        assert got["counts"] == want["counts"].decode("ascii")
        assert got["size"] == [int(height), int(width)]
        np.testing.assert_array_equal(rle.decode(got), index_map == value)


def test_instance_touching_the_first_pixel_and_empty_maps() -> None:
    index_map = np.zeros((4, 3), np.uint8)
    index_map[0, 0] = 7
    assert rle.decode(rle.encode_index_map(index_map)[7]).sum() == 1
    assert rle.encode_index_map(np.zeros((4, 3), np.uint8)) == {}


def test_boxes_areas_iou_and_merge() -> None:
    a = np.zeros((10, 10), np.uint8)
    a[2:5, 3:9] = 1
    b = np.zeros((10, 10), np.uint8)
    b[2:5, 6:10] = 1
    ra, rb = rle.encode_mask(a), rle.encode_mask(b)
    boxes, areas = rle.boxes_and_areas([ra, rb])
    assert boxes == [[3.0, 2.0, 6.0, 3.0], [6.0, 2.0, 4.0, 3.0]]
    assert areas == [18, 12]
    assert rle.iou(ra, rb) == pytest.approx(9 / 21)
    assert rle.decode(rle.merge([ra, rb])).sum() == 21
