"""What CLIP sees of a tube: frame choice, area weights, the square crop and the background rule."""

from __future__ import annotations

import numpy as np
import pytest

from wsovvis.attribute.crops import (
    CropOptions,
    area_weights,
    make_crop,
    mask_box,
    select_frames,
    square_region,
)

FILL = CropOptions(background="fill", margin=0.1)
OBJECT = (200, 30, 30)


def test_select_frames_takes_every_present_frame_when_there_are_few() -> None:
    assert select_frames(np.array([0, 5, 0, 7, 1, 0]), 8) == [1, 3, 4]


def test_select_frames_takes_the_largest_frame_of_each_stretch_of_time() -> None:
    # 12 present frames in 3 runs of 4: [0..3], [4..7], [8..11]; the largest of each run, not the 3 largest overall.
    areas = np.array([1, 9, 2, 3, 50, 60, 70, 80, 4, 5, 6, 2])
    assert select_frames(areas, 3) == [1, 7, 10]
    # the three largest overall all lie in the middle run
    assert sorted(np.argsort(-areas)[:3].tolist()) == [5, 6, 7]


def test_select_frames_skips_absent_frames_and_breaks_ties_early() -> None:
    areas = np.array([0, 0, 4, 4, 0, 3, 3, 0])
    assert select_frames(areas, 2) == [2, 5]
    assert select_frames(np.zeros(5), 3) == []


def test_area_weights_follow_the_mask_areas() -> None:
    weights = area_weights(np.array([0, 10, 30, 60]), [1, 2, 3])
    np.testing.assert_allclose(weights, [0.1, 0.3, 0.6])


def test_mask_box_has_exclusive_ends() -> None:
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True
    assert mask_box(mask) == (3, 2, 9, 5)
    assert mask_box(np.zeros((4, 4), dtype=bool)) is None


def test_square_region_is_centred_and_widened_by_the_margin_on_the_longer_side() -> None:
    # a 40 x 10 box (w x h) at x 20..60, y 50..60: side 40 * 1.2 = 48, centre (40, 55)
    assert square_region((20, 50, 60, 60), 0.1) == (16, 31, 48)
    assert square_region((5, 5, 6, 6), 0.0) == (5, 5, 1)


def _frame_with_rectangle(rows: slice, cols: slice, shape: tuple[int, int] = (120, 160)):
    frame = np.zeros((*shape, 3), dtype=np.uint8)
    frame[..., 1] = 255  # a green background that must not reach the crop in 'fill' mode
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = True
    frame[mask] = OBJECT
    return frame, mask


def _object_extent(crop: np.ndarray) -> tuple[int, int, int, int]:
    is_object = np.all(np.abs(crop.astype(int) - OBJECT) <= 8, axis=-1)
    rows = np.flatnonzero(is_object.any(axis=1))
    cols = np.flatnonzero(is_object.any(axis=0))
    return cols[0], rows[0], cols[-1] + 1, rows[-1] + 1


def test_crop_keeps_the_aspect_ratio_and_centres_the_object() -> None:
    # a wide object: 80 x 20 pixels
    frame, mask = _frame_with_rectangle(slice(50, 70), slice(40, 120))
    crop = make_crop(frame, mask, 96, FILL)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    x0, y0, x1, y1 = _object_extent(crop)
    width, height = x1 - x0, y1 - y0
    # the longer side spans 1 / (1 + 2 * margin) of the crop; the shorter keeps the object's 4:1 ratio
    assert abs(width - 96 / 1.2) <= 2
    assert abs(width / height - 4.0) < 0.25
    assert abs((x0 + x1) / 2 - 48) <= 1 and abs((y0 + y1) / 2 - 48) <= 1


def test_fill_background_replaces_everything_outside_the_mask() -> None:
    frame, mask = _frame_with_rectangle(slice(50, 70), slice(40, 120))
    crop = make_crop(frame, mask, 96, FILL)
    corners = crop[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == FILL.fill).all()
    # no green background survives anywhere in the crop, though the square reaches well above and below the box
    assert not (np.abs(crop.astype(int) - (0, 255, 0)) <= 30).all(axis=-1).any()


def test_blur_background_keeps_context_but_leaves_the_object_sharp() -> None:
    frame, mask = _frame_with_rectangle(slice(50, 70), slice(40, 120))
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, size=frame.shape, dtype=np.uint8)
    frame = np.where(mask[..., None], frame, noise)
    crop = make_crop(frame, mask, 96, CropOptions(background="blur", margin=0.1))
    fill = make_crop(frame, mask, 96, FILL)
    x0, y0, x1, y1 = _object_extent(fill)
    inner = (slice(y0 + 2, y1 - 2), slice(x0 + 2, x1 - 2))
    np.testing.assert_array_equal(crop[inner], fill[inner])  # inside the mask: the frame's own pixels
    outside = crop[:8, 40:56].astype(float)  # above the object: blurred noise, far smoother than the noise
    assert outside.std() < 0.5 * noise.astype(float).std()
    assert not (outside == FILL.fill).all()


def test_crop_pads_with_the_fill_colour_where_the_square_leaves_the_frame() -> None:
    frame, mask = _frame_with_rectangle(slice(0, 60), slice(0, 10))  # a tall object at the left edge
    crop = make_crop(frame, mask, 64, CropOptions(background="blur", margin=0.1))
    x0, _, x1, _ = _object_extent(crop)
    assert abs((x0 + x1) / 2 - 32) <= 1  # still centred: the part left of the frame is padding
    assert (crop[32, :5] == FILL.fill).all()


def test_empty_mask_gives_no_crop() -> None:
    frame, _ = _frame_with_rectangle(slice(0, 1), slice(0, 1))
    assert make_crop(frame, np.zeros(frame.shape[:2], dtype=bool), 32, FILL) is None


def test_unknown_background_is_refused() -> None:
    with pytest.raises(ValueError, match="background"):
        CropOptions(background="grey")
