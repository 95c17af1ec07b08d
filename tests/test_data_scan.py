"""The content check of folder datasets: every problem inside the files is found before
training, as one line naming the file or folder (the issue's cases), and a fuzz test over
200 random folders mixing good and bad files: each either passes the check and then decodes
completely, or fails it with one line naming a file or folder of the dataset."""

from __future__ import annotations

import io
import os
import random

import numpy as np
import pytest
from PIL import Image

from vision_jax.data import folder as folder_lib
from vision_jax.data.scan import scan_folder

WHERE = "config.dataset='folder:x'"


def _image(mode: str, size=(12, 10), seed=0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 4), np.uint8)
    return Image.fromarray(pixels, "RGBA").convert(mode)


def _save(path, mode="RGB", fmt="PNG", size=(12, 10), seed=0) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _image(mode, size, seed).save(path, fmt)
    return str(path)


def _dataset(root, per_class=3, classes=("cat", "dog")) -> None:
    for name in classes:
        for i in range(per_class):
            _save(root / name / f"{i}.png", seed=i)


def _scan(root):
    scan_folder.cache_clear()
    folder_lib.index_folder.cache_clear()
    return scan_folder(str(root), WHERE)


def test_a_good_folder_reports_its_channel_counts(tmp_path):
    _dataset(tmp_path)
    assert _scan(tmp_path) == {3: 6}


def test_one_greyscale_file_among_rgb_is_named(tmp_path):
    """The dataset took its channel count from the first file in sorted order: this grey
    one would have turned every colour image grey."""
    _dataset(tmp_path)
    grey = _save(tmp_path / "cat" / "0_grey.png", mode="L")
    with pytest.raises(ValueError) as error:
        _scan(tmp_path)
    assert str(error.value) == (
        f"{WHERE}: images mix channel counts (1 greyscale, 6 colour; e.g. {grey} is "
        "greyscale); save every image with the same channels")


def test_a_jpeg_truncated_after_its_header_is_named(tmp_path):
    _dataset(tmp_path)
    buffer = io.BytesIO()
    _image("RGB", (64, 64)).save(buffer, "JPEG")
    bad = tmp_path / "dog" / "cut.jpg"
    data = buffer.getvalue()
    bad.write_bytes(data[:data.index(b"\xff\xda") + 40])  # the header and a little scan data
    with Image.open(bad) as image:  # the header alone reads fine: listing cannot tell
        assert image.size == (64, 64)
    with pytest.raises(ValueError, match=f"^{WHERE}: cannot decode image file {bad}: .*; fix "
                                         "or delete the file$"):
        _scan(tmp_path)


def test_an_empty_class_folder_is_named(tmp_path):
    _dataset(tmp_path)
    (tmp_path / "bird").mkdir()
    with pytest.raises(ValueError, match=f"class folder {tmp_path / 'bird'} has no images"):
        _scan(tmp_path)


def test_training_runs_the_check_before_compiling(tmp_path):
    from vision_jax.data.config import data_section
    from vision_jax.data.pipeline import validate_data_config
    from vision_jax.training.defaults import default_config

    _dataset(tmp_path / "pets")
    buffer = io.BytesIO()
    _image("RGB", (12, 10)).save(buffer, "JPEG")
    data = buffer.getvalue()  # its header reads: it used to fail mid-run, after compiling
    (tmp_path / "pets" / "dog" / "9.jpg").write_bytes(data[:data.index(b"\xff\xda") + 40])
    config = default_config()
    config.dataset, config.data_dir = "folder:pets", str(tmp_path)
    config.image_size, config.num_classes, config.batch_size = 8, 2, 2
    folder_lib.index_folder.cache_clear()
    with pytest.raises(ValueError, match="^config.dataset='folder:pets': cannot decode image "
                                         f"file {tmp_path / 'pets' / 'dog' / '9.jpg'}: "):
        validate_data_config(data_section(config))


# -- fuzz ------------------------------------------------------------------------------------

def _bad_file(path, kind: str, rng: random.Random) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "truncated":
        buffer = io.BytesIO()
        _image("RGB", (32, 32), rng.randrange(99)).save(buffer, "JPEG")
        path.write_bytes(buffer.getvalue()[:rng.randrange(20, 500)])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not an image":
        path.write_text("hello, I am a text file\n")
    elif kind == "grey":
        _save(path, mode="L", seed=rng.randrange(99))
    elif kind == "other mode":
        _save(path, mode=rng.choice(["P", "RGBA", "LA", "I;16", "1"]), seed=rng.randrange(99))
    elif kind == "other size":
        _save(path, size=(rng.randrange(1, 40), rng.randrange(1, 40)), seed=rng.randrange(99))


KINDS = ("truncated", "empty", "not an image", "grey", "other mode", "other size",
         "empty folder")


@pytest.mark.parametrize("seed", range(200))
def test_fuzz_either_decodes_completely_or_names_a_file(tmp_path, seed):
    rng = random.Random(seed)
    root = tmp_path / "data"
    classes = [f"c{i}" for i in range(rng.randrange(1, 4))]
    for name in classes:
        for i in range(rng.randrange(1, 4)):
            _save(root / name / f"good{i}.png", seed=rng.randrange(99))
    for i in range(rng.randrange(0, 3)):
        kind = rng.choice(KINDS)
        folder = root / rng.choice([*classes, "extra"])
        if kind == "empty folder":
            (root / f"empty{i}").mkdir(parents=True, exist_ok=True)
        else:
            _bad_file(folder / f"bad{i}{rng.choice(['.png', '.jpg', '.JPEG'])}", kind, rng)
    channels = rng.choice([None, 1, 3])
    try:
        _scan(root)
    except ValueError as error:
        message = str(error)
        assert "\n" not in message and message.startswith(f"{WHERE}: ")
        assert str(root) in message
        return
    source = folder_lib.FolderSource(str(root), "train", channels=channels)
    test = folder_lib.FolderSource(str(root), "test", channels=channels)
    for split in (source, test):
        for i in range(len(split)):
            assert split[i]["image"].shape[-1] == split.channels
