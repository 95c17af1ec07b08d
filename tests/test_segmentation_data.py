"""Segmentation data: the Pet-layout folder source and its errors, mask-value mapping (folder,
TFDS Pet, built-in shapes), joint augmentations keeping image and mask aligned, batches."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest
from PIL import Image

from vision_jax.augment import AugmentSection, DevicePreprocess
from vision_jax.data import data_section
from vision_jax.data import segmentation as seg
from vision_jax.data.builtin import shapes_segmentation
from vision_jax.data.pipeline import make_eval_iterator, make_train_iterator
from vision_jax.data.sources import open_splits, validate_dataset
from vision_jax.training.defaults import default_config

SIZES = [(40, 32), (48, 40), (32, 32), (56, 44)]  # (width, height): Pet images vary in size


def write_pet_folder(root, count: int = 12, seed: int = 0, lists: bool = False) -> str:
    """An Oxford-IIIT-Pet-like folder: JPEG images and trimap PNGs (1 pet, 2 bg, 3 border).

    The pet is a bright rectangle on a dark background, so a tiny model can learn it.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations", "trimaps"), exist_ok=True)
    stems = []
    for i in range(count):
        width, height = SIZES[i % len(SIZES)]
        trimap = np.full((height, width), 2, np.uint8)
        top, left = rng.integers(2, height // 3), rng.integers(2, width // 3)
        bottom, right = top + height // 2, left + width // 2
        trimap[top - 1:bottom + 1, left - 1:right + 1] = 3
        trimap[top:bottom, left:right] = 1
        image = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
        image[trimap == 1] = rng.integers(180, 255, 3)
        stem = f"Breed_{i}"
        Image.fromarray(image).save(os.path.join(root, "images", f"{stem}.jpg"), quality=95)
        Image.fromarray(trimap).save(os.path.join(root, "annotations", "trimaps", f"{stem}.png"))
        stems.append(stem)
    # A macOS resource fork as in the real Pet archive: must be skipped.
    with open(os.path.join(root, "annotations", "trimaps", "._Breed_0.png"), "wb") as f:
        f.write(b"\x00\x05\x16\x07")
    if lists:
        for name, part in (("trainval.txt", stems[: count * 2 // 3]),
                           ("test.txt", stems[count * 2 // 3:])):
            with open(os.path.join(root, "annotations", name), "w") as f:
                f.writelines(f"{s} 1 1 1\n" for s in part)
    return str(root)


def test_pairs_records_and_seeded_split(tmp_path):
    root = write_pet_folder(tmp_path / "pets")
    sources, info = open_splits(f"segmentation_folder:{root}", {"s": "train", "t": "test"})
    assert info.split_sizes == {"train": 10, "test": 2}  # round(0.2 * 12) test images
    assert info.num_channels == 3
    assert open_splits(f"segmentation_folder:{root}", {"s": "test"})[0]["test"]._items == (
        sources["test"]._items)  # the split depends only on the file names
    for split in ("train", "test"):
        for index in range(len(sources[split])):
            record = sources[split][index]
            stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
            expected = np.asarray(Image.open(
                os.path.join(root, "annotations", "trimaps", f"{stem}.png")))
            np.testing.assert_array_equal(record["segmentation_mask"][..., 0], expected)
            assert record["image"].shape == (*expected.shape, 3)


def test_pet_list_files_define_the_splits(tmp_path):
    root = write_pet_folder(tmp_path / "pets", lists=True)
    info = validate_dataset(f"segmentation_folder:{root}", {"config.train_split": "train"})
    assert info.split_sizes == {"train": 8, "test": 4}


def test_split_folders(tmp_path):
    write_pet_folder(tmp_path / "data" / "train", count=4)
    write_pet_folder(tmp_path / "data" / "validation", count=2, seed=1)
    info = validate_dataset(f"segmentation_folder:{tmp_path / 'data'}")
    assert info.split_sizes == {"train": 4, "validation": 2}


def _break(root, case):
    images, trimaps = os.path.join(root, "images"), os.path.join(root, "annotations", "trimaps")
    if case == "missing mask":
        os.remove(os.path.join(trimaps, "Breed_3.png"))
        return "Breed_3.jpg"
    if case == "extra mask":
        os.remove(os.path.join(images, "Breed_5.jpg"))
        return "Breed_5.png"
    if case == "wrong size":
        Image.fromarray(np.full((7, 9), 2, np.uint8)).save(os.path.join(trimaps, "Breed_2.png"))
        return "Breed_2.png"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing mask", "extra mask", "wrong size"])
def test_malformed_folder_names_the_file(tmp_path, case):
    root = write_pet_folder(tmp_path / "pets", count=6)
    bad_file = _break(root, case)
    with pytest.raises((FileNotFoundError, ValueError), match=rf"config\.dataset.*{bad_file}"):
        validate_dataset(f"segmentation_folder:{root}", {"config.train_split": "train"})


def _config(dataset, num_classes=3, **segmentation):
    config = default_config()
    config.task, config.dataset, config.num_classes = "segmentation", dataset, num_classes
    config.image_size = 16
    for key, value in segmentation.items():
        config.segmentation[key] = value
    return config


def _spec(config):
    """The segmentation example spec `config`'s task would use (`config.segmentation` as it
    is, for the mapping fields)."""
    return seg.segmentation_spec(config.num_classes, dataset=config.dataset,
                                 data_dir=config.data_dir, **config.segmentation.to_dict())


def test_bad_mask_value_names_the_file(tmp_path):
    root = write_pet_folder(tmp_path / "pets", count=6)
    Image.fromarray(np.full((32, 40), 7, np.uint8)).save(
        os.path.join(root, "annotations", "trimaps", "Breed_0.png"))
    sources, _ = open_splits(f"segmentation_folder:{root}", {"s": "train", "t": "test"})
    select = _spec(_config(f"segmentation_folder:{root}")).select
    records = [sources[s][i] for s in ("train", "test") for i in range(len(sources[s]))]
    with pytest.raises(ValueError, match=r"Breed_0\.png has value\(s\) \[7\].*mask_mapping"):
        for record in records:
            select(record)
    ignoring = _spec(_config(f"segmentation_folder:{root}", unmapped="ignore"))
    bad = next(r for r in records if r["file_name"].endswith("Breed_0.png"))
    assert (ignoring.select(bad)["segmentation"] == 255).all()


def test_mask_mappings_of_the_three_sources(tmp_path):
    trimap = np.array([[1, 2], [3, 2]], np.uint8)[..., None]
    image = np.zeros((2, 2, 3), np.uint8)
    # Pet trimaps, from TFDS and from a folder: 1 pet -> 0, 2 background -> 1, 3 border -> 2.
    pets = _spec(_config("tfds:oxford_iiit_pet")).select(
        {"image": image, "segmentation_mask": trimap, "file_name": b"x.jpg"})
    np.testing.assert_array_equal(pets["segmentation"], trimap[..., 0] - 1)
    root = write_pet_folder(tmp_path / "pets", count=6)
    folder = _spec(_config(f"segmentation_folder:{root}")).select(
        {"image": image, "segmentation_mask": trimap})
    np.testing.assert_array_equal(folder["segmentation"], trimap[..., 0] - 1)
    # An explicit mapping, with the border ignored.
    border_ignored = _spec(_config(
        "tfds:oxford_iiit_pet", num_classes=2, mask_mapping={1: 0, 2: 1, 3: 255})).select(
        {"image": image, "segmentation_mask": trimap})
    np.testing.assert_array_equal(border_ignored["segmentation"], [[0, 1], [255, 1]])
    # Built-in shapes: class masks as they are.
    scene = shapes_segmentation.generate_example("test", 0)
    shapes = _spec(_config("builtin:shapes_segmentation", 4)).select(
        {"image": scene["image"], "segmentation_mask": scene["class_mask"]})
    np.testing.assert_array_equal(shapes["segmentation"], np.squeeze(scene["class_mask"]))


def test_nearest_mask_resize_matches_pixel_centres():
    mask = np.random.default_rng(0).integers(0, 5, (8, 12)).astype(np.uint8)
    # Halving: output pixel i covers input pixels 2i, 2i+1; its centre falls on input 2i + 1.
    np.testing.assert_array_equal(seg.resize_mask(mask, (4, 6)), mask[1::2, 1::2])
    # Doubling repeats every pixel.
    np.testing.assert_array_equal(seg.resize_mask(mask, (16, 24)),
                                  mask.repeat(2, 0).repeat(2, 1))


def _aligned_batch(rng, count=12):
    """Block images whose channel 0 is 20 * mask, so alignment is checkable; index 0..n-1."""
    masks = rng.integers(0, 4, (count, 3, 4)).astype(np.uint8).repeat(8, 1).repeat(8, 2)
    images = np.stack([masks * 20, rng.integers(0, 256, masks.shape),
                       np.full(masks.shape, 255)], -1).astype(np.uint8)
    return {"image": images, "segmentation": masks, "index": np.arange(count, dtype=np.int32)}


@pytest.mark.parametrize("fields", [{"flip": True}, {"crop_padding": 5},
                                    {"scale": (0.5, 2.0)}, {"rotate_degrees": 30.0},
                                    {"random_resized_crop": (0.3, 1.0)}])
def test_device_augmentations_keep_image_and_mask_aligned(fields):
    prep = DevicePreprocess(section=AugmentSection(**fields), mask_fill=255)
    batch = _aligned_batch(np.random.default_rng(0))
    out = jax.jit(prep.train)(batch, jax.random.key(0))
    image, mask = np.asarray(out["image"]) * 255, np.asarray(out["segmentation"])
    assert mask.dtype == np.int32 and mask.shape == image.shape[:3] == (12, 24, 32)
    changed = sum(not np.array_equal(m, b) for m, b in zip(mask, batch["segmentation"],
                                                            strict=True))
    assert changed >= 3  # the transform really moved things
    padded = mask == 255
    # Padding: black in the image (channel 2 was all 255), the ignore label in the mask (at
    # the edge of the padding bilinear blends, so only pixels deep inside it are checked).
    deep = np.zeros_like(padded)
    deep[:, 1:-1, 1:-1] = np.lib.stride_tricks.sliding_window_view(
        padded, (3, 3), axis=(1, 2)).all((-1, -2))
    np.testing.assert_allclose(image[..., 2][deep], 0.0, atol=1e-3)
    assert set(np.unique(mask[~padded])) <= {0, 1, 2, 3}
    # Inside constant 3x3 neighbourhoods bilinear and nearest agree.
    window = np.lib.stride_tricks.sliding_window_view(mask, (3, 3), axis=(1, 2))
    interior = np.zeros_like(padded)
    interior[:, 1:-1, 1:-1] = window.min((-1, -2)) == window.max((-1, -2))
    interior &= ~padded
    assert interior.sum() > 0.1 * mask.size
    np.testing.assert_allclose(image[..., 0][interior], mask[interior] * 20.0, atol=1e-2)


def test_pipeline_batches_train_and_padded_eval(tmp_path):
    root = write_pet_folder(tmp_path / "pets", count=12)
    config = _config(f"segmentation_folder:{root}")
    config.batch_size, config.eval_batch_size = 4, 8
    config.augment.flip, config.augment.crop_padding, config.augment.scale = True, 3, (0.8, 1.2)
    config.normalize.mean, config.normalize.std = (0.5,), (0.5,)
    data, spec = data_section(config), _spec(config)
    validate_dataset(config.dataset, {"config.train_split": "train"})
    batch = next(make_train_iterator(data, process_index=0, process_count=1, spec=spec))
    assert batch["image"].shape == (4, 16, 16, 3) and batch["image"].dtype == np.uint8
    assert batch["segmentation"].shape == (4, 16, 16) and batch["segmentation"].dtype == np.uint8
    assert set(np.unique(batch["segmentation"])) <= {0, 1, 2}  # augmentation is on device
    batches = list(make_eval_iterator(data, process_index=0, process_count=1, spec=spec))
    assert len(batches) == 1 and batches[0]["mask"].tolist() == [1, 1] + [0] * 6
    assert set(np.unique(batches[0]["segmentation"])) <= {0, 1, 2}  # no padding at eval
