"""folder: datasets on real PNG/JPEG files written with PIL."""

import os

import numpy as np
import pytest
from PIL import Image

from vision_jax.data import open_source, validate_dataset
from vision_jax.data.folder import FLAT_LAYOUT_TEST_FRACTION, FolderSource, ImageDecodeError


def _write(path, array, format=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, format=format)


def _pattern(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def split_layout(tmp_path):
    """root/<split>/<class>/: PNG RGB and grayscale, plus a JPEG, plus a non-image file."""
    root = tmp_path / "pets"
    images = {}
    for split, count in (("train", 3), ("test", 2)):
        for label, name in enumerate(("cat", "dog", "emu")):
            for i in range(count):
                pixels = _pattern(len(images), (6, 5, 3))
                path = str(root / split / name / f"{i:02d}.png")
                _write(path, pixels)
                images[path] = (pixels, label)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root, images


def test_split_layout_reads_exact_pixels_and_labels(split_layout):
    root, images = split_layout
    source, info = open_source(f"folder:{root}", "train")
    assert info.class_names == ("cat", "dog", "emu") and info.num_classes == 3
    assert info.split_sizes == {"train": 9, "test": 6}
    assert info.image_shape == (6, 5, 3)
    assert len(source) == 9
    seen = []
    for i in range(len(source)):
        record = source[i]
        matches = [p for p, (px, _) in images.items() if np.array_equal(px, record["image"])]
        assert len(matches) == 1 and "/train/" in matches[0]
        assert record["image"].dtype == np.uint8
        assert record["label"] == images[matches[0]][1]
        seen.append(matches[0])
    assert len(set(seen)) == 9


def test_channels_follow_first_image_or_are_forced(tmp_path):
    root = tmp_path / "mixed"
    gray = _pattern(1, (4, 4))
    rgb = _pattern(2, (4, 4, 3))
    _write(str(root / "train" / "a" / "0.png"), gray)  # first in sorted order: grayscale
    _write(str(root / "train" / "b" / "0.png"), rgb)
    source = FolderSource(str(root), "train")
    assert source.channels == 1
    np.testing.assert_array_equal(source[0]["image"][..., 0], gray)
    # The RGB image is converted with PIL's own RGB -> L conversion.
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(source[1]["image"][..., 0], expected)
    forced = FolderSource(str(root), "train", channels=3)
    np.testing.assert_array_equal(forced[1]["image"], rgb)
    np.testing.assert_array_equal(forced[0]["image"], np.repeat(gray[..., None], 3, axis=-1))


def test_jpeg_files_decode_like_pil(tmp_path):
    root = tmp_path / "jpegs"
    pixels = _pattern(3, (16, 16, 3))
    path = str(root / "train" / "x" / "photo.JPEG")
    _write(path, pixels, format="JPEG")
    source, info = open_source(f"folder:{root}", "train")
    np.testing.assert_array_equal(source[0]["image"], np.asarray(Image.open(path).convert("RGB")))
    assert info.image_shape == (16, 16, 3)


def test_varying_sizes_give_no_image_shape(tmp_path):
    root = tmp_path / "sizes"
    _write(str(root / "train" / "a" / "0.png"), _pattern(0, (4, 4, 3)))
    _write(str(root / "train" / "a" / "1.png"), _pattern(1, (5, 4, 3)))
    _, info = open_source(f"folder:{root}", "train")
    assert info.image_shape is None and info.num_channels == 3


def test_flat_layout_splits_each_class_deterministically(tmp_path):
    root = tmp_path / "flat"
    for name, count in (("a", 10), ("b", 7)):
        for i in range(count):
            _write(str(root / name / f"{i}.png"), _pattern(i, (3, 3)))
    train, info = open_source(f"folder:{root}", "train")
    test, _ = open_source(f"folder:{root}", "test")
    expected_test = round(10 * FLAT_LAYOUT_TEST_FRACTION) + round(7 * FLAT_LAYOUT_TEST_FRACTION)
    assert info.split_sizes == {"train": 17 - expected_test, "test": expected_test}
    train_files = set(train._items)
    test_files = set(test._items)
    assert not train_files & test_files and len(train_files | test_files) == 17
    for label in (0, 1):  # stratified: every class is in both splits
        assert any(lab == label for _, lab in test._items)
        assert any(lab == label for _, lab in train._items)
    # Same answer when listed again from scratch (the split depends on names only).
    from vision_jax.data import folder

    folder.index_folder.cache_clear()
    again = FolderSource(str(root), "test")
    assert set(again._items) == test_files


def test_garbage_file_is_reported_by_name(tmp_path):
    root = tmp_path / "bad"
    _write(str(root / "train" / "a" / "ok.png"), _pattern(0, (4, 4, 3)))
    bad = root / "train" / "a" / "zz_broken.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(ImageDecodeError, match="zz_broken.png"):
        open_source(f"folder:{root}", "train")


def test_truncated_file_is_reported_by_name_when_read(tmp_path):
    root = tmp_path / "truncated"
    _write(str(root / "train" / "a" / "ok.png"), _pattern(0, (32, 32, 3)))
    path = root / "train" / "a" / "zz_cut.png"
    _write(str(path), _pattern(1, (32, 32, 3)))
    path.write_bytes(path.read_bytes()[:200])  # the header survives, the pixels do not
    source, _ = open_source(f"folder:{root}", "train")
    source[0]  # the intact file still reads
    with pytest.raises(ImageDecodeError, match=r"zz_cut\.png"):
        source[1]


def test_relative_path_resolves_against_data_dir(split_layout):
    root, _ = split_layout
    source, _ = open_source("folder:pets", "test", data_dir=str(root.parent))
    assert len(source) == 6


def test_missing_folder_and_unknown_split_errors(split_layout, tmp_path):
    root, _ = split_layout
    with pytest.raises(FileNotFoundError, match=r"config\.dataset='folder:.*does not exist"):
        open_source(f"folder:{tmp_path / 'nowhere'}", "train")
    with pytest.raises(ValueError, match=r"config\.eval_split='val'.*available: test, train"):
        validate_dataset(f"folder:{root}", {"config.eval_split": "val"})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="has no images"):
        open_source(f"folder:{empty}", "train")
