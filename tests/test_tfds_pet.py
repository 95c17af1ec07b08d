"""`tfds:oxford_iiit_pet` on local files: the TFDS catalog's own builder prepares a small
Oxford-IIIT-Pet-like tree (nothing is downloaded), then our `tfds:` source, segmentation
pipeline and trainer read it, and the masks that come out are the trimap PNGs mapped to classes.

How the catalog builder runs without the network or TensorFlow: see `tfds_local`. The Pet
builder's `_split_generators` asks for images.tar.gz and annotations.tar.gz; everything from there
on is the installed catalog code, unmodified, called as a user prepares the real dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from tfds_local import fill_download_cache, prepare_as_told
from train_cli import run_train

from vision_jax.augment import augment_section, device_preprocess
from vision_jax.data import data_section
from vision_jax.data.pipeline import make_eval_iterator, make_train_iterator
from vision_jax.data.segmentation import segmentation_spec
from vision_jax.data.sources import open_splits
from vision_jax.training.defaults import default_config

PET = "oxford_iiit_pet"
IMAGE_SIZE = 32
# Real Pet breeds with their 1-based CLASS-ID (catalog label order) and SPECIES (1 cat, 2 dog)
# as the list files give them. None of these stems is in the catalog's _CORRUPT_SAMPLES, whose
# re-encoding needs TensorFlow.
BREEDS = {"Abyssinian": (1, 1), "american_bulldog": (2, 2), "Bengal": (6, 1),
          "great_pyrenees": (16, 2), "pug": (26, 2), "Siamese": (33, 1)}
# (width, height): whole multiples of IMAGE_SIZE, so the nearest-neighbour resize has a
# closed form (see `_expected_mask`); Pet images vary in size and aspect.
SIZES = [(32, 32), (64, 64), (64, 32), (32, 64)]
TRIMAP_TO_CLASS = np.array([255, 0, 1, 2], np.uint8)  # 1 pet -> 0, 2 background -> 1, 3 border


def _pet_rows() -> list[tuple[str, int, int]]:
    """12 (stem, class_id, species): 8 in trainval.txt, 4 in test.txt."""
    return [(f"{breed}_{100 + i}", *BREEDS[breed])
            for i, breed in enumerate(sorted(BREEDS, key=str.lower) * 2)]


def write_pet_tree(root: Path, seed: int = 0) -> list[tuple[str, int, int]]:
    """`images/*.jpg` and `annotations/{trimaps/*.png, xmls/*.xml, trainval.txt, test.txt}` as in
    the two Pet archives. A pet is a bright box (trimap 1) with a 1-pixel border (3) on a dark
    background (2); trainval images have a head-box XML, test images none (as in the real data).
    One JPEG is greyscale, as a few Pet images are.
    """
    rng = np.random.default_rng(seed)
    for folder in ("images", "annotations/trimaps", "annotations/xmls"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rows = _pet_rows()
    for index, (stem, _, _) in enumerate(rows):
        width, height = SIZES[index % len(SIZES)]
        trimap = np.full((height, width), 2, np.uint8)
        # Box positions differ between images of one size, so masks tell the files apart.
        top, left = 2 + 3 * (index // len(SIZES)), 2 + index
        bottom, right = top + height // 2, left + width // 2
        trimap[top - 1:bottom + 1, left - 1:right + 1] = 3
        trimap[top:bottom, left:right] = 1
        image = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
        image[trimap == 1] = rng.integers(180, 255, 3)
        jpeg = Image.fromarray(image).convert("L" if index == 5 else "RGB")
        jpeg.save(root / "images" / f"{stem}.jpg", quality=95)
        Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{stem}.png")
        if index < 8:
            (root / "annotations" / "xmls" / f"{stem}.xml").write_text(
                f"<annotation><size><width>{width}</width><height>{height}</height>"
                "<depth>3</depth></size><object><name>head</name><bndbox>"
                f"<xmin>{left}</xmin><ymin>{top}</ymin><xmax>{right}</xmax><ymax>{bottom}</ymax>"
                "</bndbox></object></annotation>")
    # CLASS-ID SPECIES BREED-ID; the builder ignores BREED-ID.
    for name, part in (("trainval.txt", rows[:8]), ("test.txt", rows[8:])):
        (root / "annotations" / name).write_text(
            "".join(f"{stem} {class_id} {species} 1\n" for stem, class_id, species in part))
    return rows


@pytest.fixture(scope="module")
def pet_data(tmp_path_factory) -> tuple[Path, Path, list]:
    """(tree, data_dir, rows): the Pet tree and a TFDS data dir holding it prepared by the
    catalog builder as array_record."""
    base = tmp_path_factory.mktemp("tfds_pet")
    tree, data_dir = base / "pet_archives", base / "tfds"
    rows = write_pet_tree(tree)
    fill_download_cache(PET, data_dir, {"images.tar.gz": tree / "images",
                                        "annotations.tar.gz": tree / "annotations"})
    assert tfds.builder_cls(PET).__module__.startswith(
        "tensorflow_datasets.datasets.oxford_iiit_pet.")
    prepare_as_told(PET, data_dir)
    return tree, data_dir, rows


def _decode(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _expected_mask(tree: Path, file_name: str) -> np.ndarray:
    """The trimap PNG as classes at IMAGE_SIZE: a nearest resize by a whole factor f keeps
    pixel f * i + f // 2 (the one under output pixel i's centre)."""
    trimap = _decode(tree / "annotations" / "trimaps" / file_name.replace(".jpg", ".png"))
    fy, fx = trimap.shape[0] // IMAGE_SIZE, trimap.shape[1] // IMAGE_SIZE
    return TRIMAP_TO_CLASS[trimap[fy // 2::fy, fx // 2::fx]]


def _config(data_dir: Path, mask_mapping: dict | None) -> ml_collections.ConfigDict:
    config = default_config()
    config.task, config.dataset, config.data_dir = "segmentation", f"tfds:{PET}", str(data_dir)
    config.num_classes, config.image_size = 3, IMAGE_SIZE
    config.train_split, config.eval_split = "train", "test"
    config.normalize.mean, config.normalize.std = (0.0,), (1.0,)
    if mask_mapping is not None:
        config.segmentation.mask_mapping = mask_mapping
    return config


def _spec(config: ml_collections.ConfigDict):
    """The segmentation task's example spec for `config` (Pet trimaps unless mapped)."""
    return segmentation_spec(config.num_classes, dataset=config.dataset,
                             data_dir=config.data_dir,
                             mask_mapping=config.segmentation.get("mask_mapping"))


def _file_name(record) -> str:
    name = record["file_name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def test_catalog_records_are_the_files(pet_data):
    tree, data_dir, rows = pet_data
    sources, info = open_splits(f"tfds:{PET}", {"a": "train", "b": "test"}, str(data_dir))
    assert info.split_sizes == {"train": 8, "test": 4}
    assert info.num_classes == 37 and info.image_shape is None and info.num_channels == 3
    by_stem = {stem: (class_id, species) for stem, class_id, species in rows}
    seen = []
    for split, source in sources.items():
        for index in range(len(source)):
            record = source[index]
            stem = _file_name(record).removesuffix(".jpg")
            seen.append((split, stem))
            class_id, species = by_stem[stem]
            assert info.class_names[record["label"]] == stem.rsplit("_", 1)[0]
            assert record["label"] == class_id - 1 and record["species"] == species - 1
            # The builder stores the JPEG bytes as they are: same decoder, same pixels; TFDS
            # repeats a grey image's plane to the feature's 3 channels.
            jpeg = _decode(tree / "images" / f"{stem}.jpg")
            jpeg = np.repeat(jpeg[..., None], 3, -1) if jpeg.ndim == 2 else jpeg
            np.testing.assert_array_equal(record["image"], jpeg)
            np.testing.assert_array_equal(
                record["segmentation_mask"][..., 0],
                _decode(tree / "annotations" / "trimaps" / f"{stem}.png"))
            assert record["segmentation_mask"].shape[-1] == 1  # use_colormap only affects plots
            has_xml = (tree / "annotations" / "xmls" / f"{stem}.xml").exists()
            assert (split == "train") == has_xml and (np.any(record["head_bbox"]) == has_xml)
    assert sorted(seen) == sorted([("train", s) for s, _, _ in rows[:8]]
                                  + [("test", s) for s, _, _ in rows[8:]])


@pytest.mark.parametrize("mask_mapping", [None, {1: 0, 2: 1, 3: 2}],
                         ids=["default_pet_mapping", "explicit_mapping"])
def test_eval_batches_hold_the_mapped_trimaps(pet_data, mask_mapping):
    tree, data_dir, _ = pet_data
    config = _config(data_dir, mask_mapping)
    config.eval_batch_size = 3  # 4 test images: a full batch and a padded one
    sources, info = open_splits(config.dataset, {"config.eval_split": "test"}, config.data_dir)
    files = [_file_name(sources["test"][i]) for i in range(len(sources["test"]))]
    batches = list(make_eval_iterator(data_section(config), process_index=0, process_count=1,
                                      spec=_spec(config)))
    assert len(batches) == 2
    masks = np.concatenate([b["segmentation"] for b in batches])
    images = np.concatenate([b["image"] for b in batches])
    assert np.concatenate([b["mask"] for b in batches]).tolist() == [1, 1, 1, 1, 0, 0]
    assert masks.shape == (6, IMAGE_SIZE, IMAGE_SIZE)
    assert images.shape == (6, IMAGE_SIZE, IMAGE_SIZE, 3)
    resized = 0
    for index, file_name in enumerate(files):
        np.testing.assert_array_equal(masks[index], _expected_mask(tree, file_name))
        jpeg = _decode(tree / "images" / file_name)
        if jpeg.shape[:2] == (IMAGE_SIZE, IMAGE_SIZE):  # not resized: exactly the uint8 pixels
            np.testing.assert_array_equal(images[index], jpeg)
        else:
            resized += 1
    assert resized == 3  # one of each of the other sizes


def test_train_batches_hold_the_trimaps_or_their_mirrors(pet_data):
    tree, data_dir, rows = pet_data
    config = _config(data_dir, {1: 0, 2: 1, 3: 2})
    config.batch_size = 4
    config.augment.flip = True  # and no other augmentation, so each mask is known up to a flip
    data, spec = data_section(config), _spec(config)
    iterator = make_train_iterator(data, process_index=0, process_count=1, spec=spec)
    # The train step's preprocessing, on device.
    augment = jax.jit(device_preprocess(augment_section(config.augment), data.normalize,
                                        spec).train)
    train = [_expected_mask(tree, f"{stem}.jpg") for stem, _, _ in rows[:8]]
    test = [_expected_mask(tree, f"{stem}.jpg") for stem, _, _ in rows[8:]]
    every = train + test  # precondition: all 12 masks and their mirrors tell the files apart
    assert len({m.tobytes() for m in every + [m[:, ::-1] for m in every]}) == 24
    flipped = 0
    for _ in range(4):  # two epochs
        batch = augment(next(iterator), jax.random.key(0))
        assert batch["image"].shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
        for mask in np.asarray(batch["segmentation"]):
            plain = any(np.array_equal(mask, m) for m in train)
            mirrored = any(np.array_equal(mask, m[:, ::-1]) for m in train)
            assert plain or mirrored, "a train mask that is no train trimap"
            assert not any(np.array_equal(mask, m) for m in test)
            flipped += mirrored and not plain
    assert 0 < flipped < 16


# Compiling the U-Net's init, train, eval and predict steps: ~60 s of CPU on a 2-core machine.
@pytest.mark.slow
def test_training_on_the_catalog_dataset_reports_miou(pet_data, tmp_path):
    # The Pet config itself (mask_mapping, class names, 3 channels, ImageNet normalisation, its
    # augmentations), shrunk to a 2-step run of a tiny U-Net.
    _, data_dir, _ = pet_data
    run_train(tmp_path / "run", f"--config.dataset=tfds:{PET}", f"--config.data_dir={data_dir}",
              "--config.eval_split=test", "--config.image_size=32", "--config.model.depth=2",
              "--config.model.base_width=4", "--config.batch_size=8", "--config.eval_batch_size=4",
              "--config.num_steps=2", "--config.eval_every_steps=2", "--config.log_every_steps=1",
              "--config.checkpoint_every_steps=2", config="configs/pets_unet.py")
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    final = [r for r in records if "eval/miou" in r][-1]
    assert final["step"] == 2
    for key in ("eval/miou", "eval/pixel_accuracy", "eval/iou/pet", "eval/iou/background",
                "eval/loss"):
        assert np.isfinite(final[key]) and (key == "eval/loss" or 0 <= final[key] <= 1)
