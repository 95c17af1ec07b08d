"""Per-example transforms against NumPy, SciPy, JAX and PIL references."""

import jax
import numpy as np
import pytest
import scipy.ndimage
from PIL import Image, ImageEnhance

from vision_jax.data import transforms as T


def _image(seed=0, shape=(12, 10, 3)):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _padded_crop_reference(image, padding, top, left):
    height, width = image.shape[:2]
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    return padded[top:top + height, left:left + width]


def test_to_float_scales_uint8():
    pixels = np.array([[[0], [51], [255]]], np.uint8)
    out = T.to_float(pixels)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], [[0.0, 0.2, 1.0]])


@pytest.mark.parametrize("dy, dx", [(0, 0), (2, -1), (-3, 4), (12, 0), (0, -10)])
def test_shift_with_zeros_equals_padded_crop(dy, dx):
    image = _image()
    padding = 12
    expected = _padded_crop_reference(image, padding, padding - dy, padding - dx)
    np.testing.assert_array_equal(T.shift_with_zeros(image, dy, dx), expected)


def test_random_crop_with_padding_is_a_zero_padded_crop_and_covers_all_offsets():
    image = _image(shape=(6, 7, 2))
    padding = 1
    candidates = {
        (top, left): _padded_crop_reference(image, padding, top, left)
        for top in range(2 * padding + 1) for left in range(2 * padding + 1)
    }
    seen = set()
    for seed in range(200):
        out = T.random_crop_with_padding(image, padding, np.random.default_rng(seed))
        matches = [offset for offset, ref in candidates.items() if np.array_equal(out, ref)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(candidates)
    np.testing.assert_array_equal(T.random_crop_with_padding(image, 0, np.random.default_rng(0)),
                                  image)


def test_flip_twice_is_identity_and_random_flip_is_fair():
    image = _image()
    np.testing.assert_array_equal(T.flip_horizontal(T.flip_horizontal(image)), image)
    np.testing.assert_array_equal(T.flip_horizontal(image), image[:, ::-1])
    flips = sum(
        not np.array_equal(T.random_flip(image, np.random.default_rng(s)), image)
        for s in range(400))
    assert 160 < flips < 240  # Binomial(400, 1/2): mean 200, sd 10


def test_resize_matches_jax_image_resize():
    image = _image(shape=(17, 20, 3))
    for size in [(34, 40), (13, 27), (8, 10), (6, 7)]:
        expected = jax.image.resize(image, (*size, 3), method="linear", antialias=True)
        np.testing.assert_allclose(T.resize(image, size), np.asarray(expected), atol=1e-5)
    assert T.resize(image, (17, 20)) is image  # same size: untouched
    assert T.resize(_image(shape=(9, 9, 1)), 4).shape == (4, 4, 1)


def test_random_scale_off_is_identity_and_zoom_keeps_size():
    image = _image()
    np.testing.assert_array_equal(T.random_scale(image, (1.0, 1.0), np.random.default_rng(0)),
                                  image)
    ones = np.ones((16, 16, 1), np.float32)
    zoomed_in = T.random_scale(ones, (2.0, 2.0), np.random.default_rng(0))
    np.testing.assert_allclose(zoomed_in, ones, atol=1e-6)
    for seed in range(5):
        zoomed_out = T.random_scale(ones, (0.5, 0.5), np.random.default_rng(seed))
        assert zoomed_out.shape == ones.shape
        # An 8x8 block of ones somewhere inside, zeros around it.
        rows, cols = np.nonzero(zoomed_out[..., 0] > 0.5)
        assert len(rows) == 64 and np.ptp(rows) == 7 and np.ptp(cols) == 7
        np.testing.assert_allclose(zoomed_out.sum(), 64.0, atol=1e-4)


def test_random_scale_zoom_in_is_a_window_of_the_resized_image():
    image = _image(shape=(8, 8, 1))
    big = T.resize(image, (16, 16))
    out = T.random_scale(image, (2.0, 2.0), np.random.default_rng(3))
    windows = [big[y:y + 8, x:x + 8] for y in range(9) for x in range(9)]
    assert any(np.array_equal(out, w) for w in windows)


@pytest.mark.parametrize("degrees", [0.0, 7.0, -23.0, 90.0, 180.0])
def test_rotate_matches_scipy_bilinear_nearest(degrees):
    image = _image(shape=(17, 20, 3))
    expected = scipy.ndimage.rotate(image, degrees, axes=(1, 0), reshape=False, order=1,
                                    mode="nearest")
    np.testing.assert_allclose(T.rotate(image, degrees), expected, atol=1e-5)


def test_rotate_special_cases():
    square = _image(shape=(9, 9, 2))
    np.testing.assert_array_equal(T.rotate(square, 0.0), square)
    np.testing.assert_allclose(T.rotate(square, 90.0), np.rot90(square, k=1), atol=1e-5)
    np.testing.assert_allclose(T.rotate(square, -90.0), np.rot90(square, k=-1), atol=1e-5)
    constant = np.full((10, 13, 3), 0.37, np.float32)
    for degrees in (3.0, 11.5, -30.0):
        rotated = T.rotate(constant, degrees)
        np.testing.assert_allclose(rotated.mean(), 0.37, rtol=1e-6)
        np.testing.assert_allclose(rotated, constant, atol=1e-6)


def test_random_rotate_uses_a_uniform_angle_in_range():
    image = _image(shape=(11, 11, 1))
    for seed in range(3):
        out = T.random_rotate(image, 10.0, np.random.default_rng(seed))
        angle = np.random.default_rng(seed).uniform(-10.0, 10.0)
        np.testing.assert_allclose(out, T.rotate(image, angle))
    np.testing.assert_array_equal(T.random_rotate(image, 0.0, np.random.default_rng(0)), image)


def _pil(image):
    return Image.fromarray((image * 255).round().astype(np.uint8))


def _from_pil(image):
    return np.asarray(image).astype(np.float32) / 255


@pytest.mark.parametrize("factor", [0.0, 0.6, 1.0, 1.4])
def test_color_adjustments_match_pil_image_enhance(factor):
    rgb = (np.random.default_rng(1).integers(0, 256, (9, 11, 3)) / 255).astype(np.float32)
    pil = _pil(rgb)
    tolerance = 2.5 / 255  # PIL works in uint8 and rounds its grey mean
    np.testing.assert_allclose(T.adjust_brightness(rgb, factor),
                               _from_pil(ImageEnhance.Brightness(pil).enhance(factor)),
                               atol=tolerance)
    np.testing.assert_allclose(T.adjust_contrast(rgb, factor),
                               _from_pil(ImageEnhance.Contrast(pil).enhance(factor)),
                               atol=tolerance)
    np.testing.assert_allclose(T.adjust_saturation(rgb, factor),
                               _from_pil(ImageEnhance.Color(pil).enhance(factor)),
                               atol=tolerance)


def test_color_jitter_zero_is_identity_and_gray_stays_gray():
    rgb = _image()
    np.testing.assert_array_equal(T.color_jitter(rgb, 0.0, np.random.default_rng(0)), rgb)
    gray = np.repeat(_image(shape=(5, 5, 1)), 3, axis=-1)
    out = T.color_jitter(gray, 0.5, np.random.default_rng(0))
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-6)
    np.testing.assert_allclose(out[..., 1], out[..., 2], atol=1e-6)
    assert 0.0 <= out.min() and out.max() <= 1.0
    single = _image(shape=(5, 5, 1))
    assert T.color_jitter(single, 0.5, np.random.default_rng(0)).shape == (5, 5, 1)


def test_normalize_with_the_image_statistics_gives_zero_mean_unit_std():
    image = _image(shape=(20, 20, 3)) * np.array([0.5, 1.0, 0.2], np.float32)
    mean = image.reshape(-1, 3).mean(0)
    std = image.reshape(-1, 3).std(0)
    out = T.normalize(image, mean, std)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.reshape(-1, 3).std(0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(T.normalize(image, (0.5,), (0.25,)), (image - 0.5) / 0.25,
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"config\.normalize\.mean has 2 values"):
        T.normalize(image, (0.1, 0.2), (1.0,))
    with pytest.raises(ValueError, match="must be positive"):
        T.normalize(image, (0.1,), (0.0,))


def test_random_functions_are_deterministic_for_a_seed():
    image = _image(shape=(16, 16, 3))
    functions = [
        lambda rng: T.random_crop_with_padding(image, 3, rng),
        lambda rng: T.random_flip(image, rng),
        lambda rng: T.random_scale(image, (0.7, 1.3), rng),
        lambda rng: T.random_rotate(image, 15.0, rng),
        lambda rng: T.color_jitter(image, 0.4, rng),
    ]
    for function in functions:
        a = function(np.random.default_rng(42))
        b = function(np.random.default_rng(42))
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float32 and a.shape == image.shape
    outputs = [functions[2](np.random.default_rng(s)) for s in range(3)]
    assert not np.array_equal(outputs[0], outputs[1])


def test_grain_transforms_apply_to_the_image_key_only():
    image = (np.random.default_rng(0).integers(0, 256, (8, 8, 3))).astype(np.uint8)
    record = {"image": image, "label": 7, "extra": "kept"}
    out = T.ToFloat().map(record)
    assert out["label"] == 7 and out["extra"] == "kept"
    np.testing.assert_allclose(out["image"], image / 255.0, rtol=1e-6)
    assert record["image"] is image  # the input record is not modified
    resized = T.Resize(4).map(out)
    assert resized["image"].shape == (4, 4, 3)
    normalized = T.Normalize((0.5,), (0.5,)).map(out)
    np.testing.assert_allclose(normalized["image"], out["image"] * 2 - 1, atol=1e-6)
    # Arrays work too.
    np.testing.assert_array_equal(T.ToFloat().map(image), T.to_float(image))


def test_random_chain_draws_from_one_generator_in_order():
    image = _image(shape=(10, 10, 3))
    chain = T.RandomChain([T.RandomCropWithPadding(2), T.RandomHorizontalFlip(),
                           T.RandomRotation(5.0), T.RandomScale((0.9, 1.1)),
                           T.ColorJitter(0.3), T.Normalize((0.5,), (0.5,))])
    out = chain.random_map({"image": image, "label": 1}, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    expected = T.random_crop_with_padding(image, 2, rng)
    expected = T.random_flip(expected, rng)
    expected = T.random_rotate(expected, 5.0, rng)
    expected = T.random_scale(expected, (0.9, 1.1), rng)
    expected = T.color_jitter(expected, 0.3, rng)
    expected = T.normalize(expected, (0.5,), (0.5,))
    np.testing.assert_array_equal(out["image"], expected)
    assert out["label"] == 1


def test_convert_channels_matches_pil_modes():
    rgb = np.random.default_rng(4).integers(0, 256, (6, 7, 3)).astype(np.uint8)
    gray = T.convert_channels(rgb, 1)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))[..., None]
    assert gray.dtype == np.uint8 and gray.shape == (6, 7, 1)
    assert np.abs(gray.astype(int) - expected).max() <= 1  # PIL rounds in fixed point
    np.testing.assert_allclose(T.convert_channels(T.to_float(rgb), 1)[..., 0],
                               T.to_float(rgb) @ np.array([0.299, 0.587, 0.114]), atol=1e-6)
    single = rgb[..., :1]
    np.testing.assert_array_equal(T.convert_channels(single, 3),
                                  np.asarray(Image.fromarray(single[..., 0]).convert("RGB")))
    assert T.convert_channels(rgb, 3) is rgb
    with pytest.raises(ValueError, match=r"config\.image_channels=3"):
        T.convert_channels(np.zeros((2, 2, 2), np.uint8), 3)
