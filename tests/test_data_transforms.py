"""The host's share of preprocessing (channels, fixed-size resize, stacking) against PIL and
NumPy: uint8 in, uint8 out."""

import numpy as np
import pytest
from PIL import Image

from vision_jax.data import transforms as T


def test_convert_channels_matches_pil_modes():
    rgb = np.random.default_rng(4).integers(0, 256, (6, 7, 3)).astype(np.uint8)
    gray = T.convert_channels(rgb, 1)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))[..., None]
    assert gray.dtype == np.uint8 and gray.shape == (6, 7, 1)
    assert np.abs(gray.astype(int) - expected).max() <= 1  # PIL rounds in fixed point
    single = rgb[..., :1]
    np.testing.assert_array_equal(T.convert_channels(single, 3),
                                  np.asarray(Image.fromarray(single[..., 0]).convert("RGB")))
    assert T.convert_channels(rgb, 3) is rgb
    with pytest.raises(ValueError, match=r"config\.image_channels=3"):
        T.convert_channels(np.zeros((2, 2, 2), np.uint8), 3)


@pytest.mark.parametrize("channels", [1, 3])
def test_resize_is_pil_bilinear_on_uint8(channels):
    image = np.random.default_rng(0).integers(0, 256, (30, 17, channels)).astype(np.uint8)
    out = T.resize_image(image, 12)
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    expected = np.asarray(pil.resize((12, 12), Image.Resampling.BILINEAR)).reshape(12, 12, -1)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    assert T.resize_image(image, (30, 17)) is image


def test_nearest_mask_resize_takes_pixel_centres():
    mask = np.random.default_rng(0).integers(0, 5, (8, 12)).astype(np.uint8)
    np.testing.assert_array_equal(T.resize_mask(mask, (4, 6)), mask[1::2, 1::2])
    np.testing.assert_array_equal(T.resize_mask(mask, (16, 24)), mask.repeat(2, 0).repeat(2, 1))


def test_prepare_and_stack_give_one_uint8_batch():
    examples = [T.prepare({"image": np.full((5, 9), 0.5, np.float32), "label": 2}, 4, 3),
                T.prepare({"image": np.zeros((4, 4, 1), np.uint8), "label": 0}, 4, 3)]
    batch = T.stack(examples)
    assert batch["image"].shape == (2, 4, 4, 3) and batch["image"].dtype == np.uint8
    assert batch["image"][0].min() == batch["image"][0].max() == 128  # [0, 1] floats -> uint8
    assert batch["label"].tolist() == [2, 0] and batch["label"].dtype == np.int32
