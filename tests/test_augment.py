"""The on-device augmentations against independent references (PIL, scipy.ndimage, NumPy,
colorsys): images, masks and boxes move together, and every draw is keyed by the example."""

import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from PIL import Image, ImageEnhance

from vision_jax.augment import (
    AUGMENTATIONS,
    ORDER,
    AugmentSection,
    DevicePreprocess,
    color,
    geometric,
    mix,
)
from vision_jax.augment.section import augment_section
from vision_jax.errors import ConfigError

H, W = 24, 20


def _image(seed=0, shape=(H, W, 3)):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _object_mask(top=5, left=4, bottom=13, right=11):
    """Class 1 on rows [top, bottom), columns [left, right); its box in pixel edges."""
    mask = np.zeros((H, W), np.uint8)
    mask[top:bottom, left:right] = 1
    return mask, np.array([left, top, right, bottom], np.float32)


def _extent(mask):
    rows, cols = np.nonzero(mask == 1)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)


def _warp_all(matrix, mask, box, min_visible=0.0):
    out_mask = np.asarray(geometric.warp_mask(jnp.asarray(mask), matrix, 0))
    boxes, classes = geometric.warp_boxes(jnp.asarray(box[None]), jnp.array([1]), matrix, H, W,
                                          min_visible)
    return out_mask, np.asarray(boxes[0]), int(classes[0])


# -- the resampler against scipy.ndimage --------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_bilinear_and_nearest_match_scipy_affine_transform(seed):
    rng = np.random.default_rng(seed)
    matrix = np.eye(3, dtype=np.float32)
    matrix[:2, :2] += rng.normal(0, 0.3, (2, 2))
    matrix[:2, 2] = rng.normal(0, 3, 2)
    image = _image(seed)
    out = np.asarray(geometric.warp_image(jnp.asarray(image), jnp.asarray(matrix)))
    for c in range(3):
        expected = scipy.ndimage.affine_transform(image[..., c], matrix, order=1,
                                                  mode="grid-constant", cval=0.0,
                                                  prefilter=False)
        np.testing.assert_allclose(out[..., c], expected, atol=1e-5)
    mask = rng.integers(0, 5, (H, W)).astype(np.uint8)
    nearest = np.asarray(geometric.warp_mask(jnp.asarray(mask), jnp.asarray(matrix), 255))
    expected = scipy.ndimage.affine_transform(mask, matrix, order=0, mode="grid-constant",
                                              cval=255)
    sy, sx = (np.asarray(c) for c in geometric.source_coordinates(jnp.asarray(matrix), H, W))
    tie = (np.abs(sy - np.round(sy)) > 0.499) | (np.abs(sx - np.round(sx)) > 0.499)
    np.testing.assert_array_equal(nearest[~tie], expected[~tie])  # rounding of exact halves


# -- flips -------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1])
def test_flips_mirror_image_mask_and_boxes_and_keep_class_areas(axis):
    image = _image()
    mask, box = _object_mask()
    mask = mask + (np.random.default_rng(1).random((H, W)) < 0.2).astype(np.uint8) * 2
    matrix = geometric.flip_matrix(True, (H, W)[axis], axis)
    out = np.asarray(geometric.warp_image(jnp.asarray(image), matrix))
    np.testing.assert_allclose(out, np.flip(image, axis), atol=1e-6)
    out_mask, out_box, cls = _warp_all(matrix, mask, box)
    np.testing.assert_array_equal(out_mask, np.flip(mask, axis))
    np.testing.assert_array_equal(np.bincount(out_mask.ravel(), minlength=3),
                                  np.bincount(mask.ravel(), minlength=3))
    assert cls == 1
    np.testing.assert_allclose(out_box, _extent(np.flip(mask, axis)), atol=1e-4)
    unflipped = geometric.flip_matrix(False, W, axis)
    np.testing.assert_array_equal(np.asarray(unflipped), np.eye(3))


# -- pad-and-crop ------------------------------------------------------------------------------


@pytest.mark.parametrize("dy, dx", [(0, 0), (2, -1), (-3, 4), (9, -8)])
def test_translation_is_a_zero_padded_crop(dy, dx):
    image = _image()
    pad = 10
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    expected = padded[pad - dy:pad - dy + H, pad - dx:pad - dx + W]
    matrix = geometric.translation(dy, dx)
    np.testing.assert_allclose(np.asarray(geometric.warp_image(jnp.asarray(image), matrix)),
                               expected, atol=1e-6)
    mask, box = _object_mask()
    out_mask, out_box, cls = _warp_all(matrix, mask, box)
    padded_mask = np.pad(mask, pad, constant_values=0)
    np.testing.assert_array_equal(out_mask, padded_mask[pad - dy:pad - dy + H,
                                                        pad - dx:pad - dx + W])
    if cls == 1:
        np.testing.assert_allclose(out_box, _extent(out_mask), atol=1e-4)


def test_a_box_that_leaves_the_image_is_dropped_and_a_cut_one_is_clipped():
    mask, box = _object_mask(top=2, left=2, bottom=8, right=6)  # 6 x 4 pixels
    _, gone, cls = _warp_all(geometric.translation(0, -10), mask, box)
    assert cls == -1 and np.all(gone == 0)
    out_mask, cut, cls = _warp_all(geometric.translation(-5, 0), mask, box, min_visible=0.25)
    assert cls == 1
    np.testing.assert_allclose(cut, _extent(out_mask), atol=1e-4)  # rows 0..3 remain
    _, _, cls = _warp_all(geometric.translation(-5, 0), mask, box, min_visible=0.75)
    assert cls == -1  # half of it is left: below min_visible


# -- rotation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("degrees", [7.0, -23.0, 90.0])
def test_rotation_matches_pil_and_boxes_follow_the_object(degrees):
    image = _image(3)[..., 0]
    expected = np.asarray(Image.fromarray(image, mode="F").rotate(
        degrees, resample=Image.Resampling.BILINEAR))
    matrix = geometric.rotation(degrees, H, W)
    out = np.asarray(geometric.warp_image(jnp.asarray(image[..., None]), matrix))[..., 0]
    # Inside the image PIL and we sample the same points; at the border PIL drops what we
    # blend with black.
    sy, sx = (np.asarray(c) for c in geometric.source_coordinates(matrix, H, W))
    inside = (sy >= 0) & (sy <= H - 1) & (sx >= 0) & (sx <= W - 1)
    np.testing.assert_allclose(out[inside], expected[inside], atol=1e-4)
    mask, box = _object_mask(top=8, left=6, bottom=16, right=14)
    out_mask, out_box, cls = _warp_all(matrix, mask, box)
    assert cls == 1
    np.testing.assert_allclose(out_box, _extent(out_mask), atol=1.0)


# -- zoom and the random resized crop ----------------------------------------------------------


@pytest.mark.parametrize("window", [(3.0, 2.0, 12.0, 10.0), (0.0, 5.0, 20.0, 15.0)])
def test_crop_resize_matches_pil_resize_of_the_window(window):
    top, left, crop_h, crop_w = window
    image = _image(5)[..., 0]
    expected = np.asarray(Image.fromarray(image, mode="F").resize(
        (W, H), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h)))
    matrix = geometric.crop_resize(top, left, crop_h, crop_w, H, W)
    out = np.asarray(geometric.warp_image(jnp.asarray(image[..., None]), matrix))[..., 0]
    sy, sx = (np.asarray(c) for c in geometric.source_coordinates(matrix, H, W))
    inside = (sy >= 0) & (sy <= H - 1) & (sx >= 0) & (sx <= W - 1)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(out[inside], expected[inside], atol=1e-4)


@pytest.mark.parametrize("scale, offset", [(2.0, (-6.0, -4.0)), (0.5, (3.0, 5.0)),
                                           (1.3, (-2.0, -1.0))])
def test_zoom_moves_mask_and_boxes_with_the_image(scale, offset):
    matrix = geometric.zoom(scale, scale, *offset)
    mask, box = _object_mask()
    out_mask, out_box, cls = _warp_all(matrix, mask, box)
    assert cls == 1
    np.testing.assert_allclose(out_box, _extent(out_mask), atol=1.0)
    expected = box * scale + np.array([offset[1], offset[0]] * 2)
    np.testing.assert_allclose(out_box, np.clip(expected, 0, [W, H, W, H]), atol=1e-3)


def test_integer_zoom_in_repeats_pixels_like_numpy():
    mask = np.random.default_rng(2).integers(0, 4, (H, W)).astype(np.uint8)
    out = np.asarray(geometric.warp_mask(jnp.asarray(mask), geometric.zoom(2.0, 2.0, 0.0, 0.0),
                                         0))
    np.testing.assert_array_equal(out, np.repeat(np.repeat(mask, 2, 0), 2, 1)[:H, :W])


# -- photometric -------------------------------------------------------------------------------


def _pil(image):
    return Image.fromarray((image * 255).round().astype(np.uint8))


@pytest.mark.parametrize("factor", [0.0, 0.6, 1.0, 1.4])
def test_color_adjustments_match_pil_image_enhance(factor):
    rgb = (np.random.default_rng(1).integers(0, 256, (9, 11, 3)) / 255).astype(np.float32)
    pil = _pil(rgb)
    tolerance = 2.5 / 255  # PIL works in uint8 and rounds its grey mean

    def ref(enhancer):
        return np.asarray(enhancer(pil).enhance(factor)).astype(np.float32) / 255

    np.testing.assert_allclose(color.adjust_brightness(rgb, factor),
                               ref(ImageEnhance.Brightness), atol=tolerance)
    np.testing.assert_allclose(color.adjust_contrast(rgb, factor),
                               ref(ImageEnhance.Contrast), atol=tolerance)
    np.testing.assert_allclose(color.adjust_saturation(rgb, factor),
                               ref(ImageEnhance.Color), atol=tolerance)


@pytest.mark.parametrize("delta", [0.1, -0.3])
def test_hue_matches_colorsys(delta):
    rgb = np.random.default_rng(2).random((5, 6, 3), dtype=np.float32)
    expected = np.empty_like(rgb)
    for index in np.ndindex(rgb.shape[:2]):
        h, s, v = colorsys.rgb_to_hsv(*rgb[index])
        expected[index] = colorsys.hsv_to_rgb((h + delta) % 1.0, s, v)
    np.testing.assert_allclose(color.adjust_hue(jnp.asarray(rgb), delta), expected, atol=1e-4)


def test_cutout_erases_the_square_numpy_picks():
    image = _image()
    out = np.asarray(color.erase(jnp.asarray(image), 20, -2, 6))
    expected = image.copy()
    expected[20:26, 0:4] = 0
    np.testing.assert_array_equal(out, expected)


# -- mixup and cutmix --------------------------------------------------------------------------


def test_mixup_and_cutmix_blend_with_the_mirrored_batch():
    images = jnp.asarray(_image(shape=(4, H, W, 3)))
    batch = {"image": images, "label": jnp.arange(4)}
    key = jax.random.key(0)
    mixed = mix.mixup(key, AugmentSection(mixup=0.4), batch)
    weight = float(mixed["mix_weight"][0])
    np.testing.assert_allclose(mixed["image"], weight * images + (1 - weight) * images[::-1],
                               atol=1e-6)
    np.testing.assert_array_equal(mixed["mix_label"], [3, 2, 1, 0])
    cut = mix.cutmix(key, AugmentSection(cutmix=1.0), batch)
    from_partner = np.all(np.asarray(cut["image"]) == np.asarray(images[::-1]), axis=-1)
    weight = np.asarray(cut["mix_weight"])
    np.testing.assert_allclose(1 - from_partner.mean(axis=(1, 2)), weight, atol=1e-6)


# -- the chain: keyed per example, config section -----------------------------------------------


def _keyed_batch(indices, seed=0):
    rng = np.random.default_rng(seed)
    images = {i: rng.integers(0, 256, (H, W, 3)).astype(np.uint8) for i in range(10)}
    return {"image": np.stack([images[i] for i in indices]),
            "index": np.asarray(indices, np.int32)}


def test_an_example_is_augmented_alike_in_any_batch():
    section = AugmentSection(random_resized_crop=(0.3, 1.0), rotate_degrees=20.0, flip=True,
                             color_jitter=0.4, hue=0.1, cutout=5, crop_padding=2)
    prep = DevicePreprocess(section=section, mean=(0.5,), std=(0.25,))
    train = jax.jit(prep.train)
    rng = jax.random.key(3)
    whole = train(_keyed_batch([4, 5, 6, 7]), rng)["image"]
    alone = train(_keyed_batch([6]), rng)["image"]
    np.testing.assert_allclose(whole[2], alone[0], atol=1e-5)  # float rounding
    assert not np.allclose(whole[0], whole[1])
    other_key = train(_keyed_batch([6]), jax.random.key(4))["image"]
    assert not np.allclose(other_key[0], alone[0])


def test_a_chain_moves_mask_and_boxes_with_the_image():
    mask, box = _object_mask(top=8, left=6, bottom=15, right=13)
    section = AugmentSection(scale=(0.8, 1.2), rotate_degrees=15.0, flip=True,
                             vertical_flip=True, crop_padding=2)
    prep = DevicePreprocess(section=section, mask_fill=255, min_visible=0.0)
    batch = {"image": np.repeat(mask[None, ..., None] * 255, 8, 0).astype(np.uint8),
             "segmentation": np.repeat(mask[None], 8, 0),
             "boxes": np.repeat(box[None, None], 8, 0), "classes": np.ones((8, 1), np.int32),
             "index": np.arange(8, dtype=np.int32)}
    out = jax.jit(prep.train)(batch, jax.random.key(0))
    for i in range(8):
        seg = np.asarray(out["segmentation"][i])
        if out["classes"][i, 0] == 1 and (seg == 1).any():
            np.testing.assert_allclose(out["boxes"][i, 0], _extent(seg), atol=1.0)
        bright = np.asarray(out["image"][i, ..., 0]) > 0.5
        assert (bright == (seg == 1)).mean() > 0.95  # the image moved with its mask


def test_section_lists_enabled_transforms_in_order_and_names_bad_fields():
    assert AugmentSection().enabled() == ()
    section = augment_section({"flip": True, "rotate_degrees": 5, "cutout": 4})
    assert section.enabled() == ("rotate_degrees", "flip", "cutout")
    assert set(ORDER) <= set(AUGMENTATIONS.names())
    with pytest.raises(ConfigError, match=r"config\.augment\.rotate_degres is not a known field; "
                                          r"did you mean config\.augment\.rotate_degrees"):
        augment_section({"rotate_degres": 5})
    with pytest.raises(ConfigError, match=r"config\.augment\.scale=\(1\.2, 0\.9\) must be"):
        augment_section({"scale": (1.2, 0.9)})
    with pytest.raises(ConfigError, match=r"config\.augment\.mixup=0\.2 mixes class labels"):
        augment_section({"mixup": 0.2}).check_task(frozenset({"segmentation"}))


def test_normalisation_is_on_device_and_plain_eval_keeps_targets():
    prep = DevicePreprocess(mean=(0.5,), std=(0.25,))
    batch = {"image": np.array([[[[0], [255]]]], np.uint8),
             "segmentation": np.array([[[1, 2]]], np.uint8)}
    out = prep.eval(batch)
    np.testing.assert_allclose(out["image"][0, 0, :, 0], [-2.0, 2.0])
    assert out["segmentation"].dtype == jnp.int32
