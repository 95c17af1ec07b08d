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
        "greyscale); save every image with the same channels, or set config.image_channels "
        "(1 or 3) to convert them")


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


# -- image + annotation datasets, and set channels -------------------------------------------

def _seg_folder(root, masks: dict | None = None, count: int = 5) -> None:
    """images/<i>.png + annotations/trimaps/<i>.png (values 1..3); `masks` replaces some
    masks ({index: array or PIL image})."""
    os.makedirs(root / "images", exist_ok=True)
    os.makedirs(root / "annotations" / "trimaps", exist_ok=True)
    for i in range(count):
        _save(root / "images" / f"{i}.png", seed=i)
        mask = (masks or {}).get(i, np.random.default_rng(i).integers(1, 4, (10, 12), np.uint8))
        mask = mask if isinstance(mask, Image.Image) else Image.fromarray(mask)
        mask.save(root / "annotations" / "trimaps" / f"{i}.png")


def _scan_segmentation(root, **overrides):
    from vision_jax.data import segmentation as seg
    from vision_jax.data.config import data_section
    from vision_jax.data.scan import scan_examples
    from vision_jax.data.sources import validate_dataset
    from vision_jax.training.defaults import default_config

    seg.index_pairs.cache_clear()
    config = default_config()
    config.dataset, config.num_classes, config.image_size = f"segmentation_folder:{root}", 3, 8
    config.update(overrides)
    data = data_section(config)
    validate_dataset(data.dataset, {"config.train_split": "train"})
    spec = seg.segmentation_spec(3, dataset=data.dataset, data_dir="")
    scan_examples(data, spec)


def test_a_good_segmentation_folder_passes(tmp_path):
    _seg_folder(tmp_path)
    _scan_segmentation(tmp_path)


def test_a_trimap_value_outside_the_mapping_is_named(tmp_path):
    bad = np.full((10, 12), 2, np.uint8)
    bad[3, 4] = 7
    _seg_folder(tmp_path, {3: bad})
    mask = tmp_path / "annotations" / "trimaps" / "3.png"
    with pytest.raises(ValueError) as error:
        _scan_segmentation(tmp_path)
    assert str(error.value) == (
        f"config.dataset='segmentation_folder:{tmp_path}': mask {mask} has value(s) [7] that "
        "config.segmentation.mask_mapping does not map; add them to the mapping or set "
        "config.segmentation.unmapped='ignore'")


def test_an_rgb_trimap_is_named(tmp_path):
    _seg_folder(tmp_path, {1: _image("RGB")})
    mask = tmp_path / "annotations" / "trimaps" / "1.png"
    with pytest.raises(ValueError, match=f"^config.dataset='segmentation_folder:{tmp_path}': "
                                         f"mask {mask} has mode RGB; masks must be single"):
        _scan_segmentation(tmp_path)


def test_a_truncated_mask_is_named(tmp_path):
    _seg_folder(tmp_path)
    mask = tmp_path / "annotations" / "trimaps" / "2.png"
    data = mask.read_bytes()
    mask.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=f"^config.dataset='segmentation_folder:{tmp_path}': "
                                         f"cannot (read|decode) (mask )?{mask}: "):
        _scan_segmentation(tmp_path)


def test_a_mask_of_another_size_than_its_image_is_named(tmp_path):
    _seg_folder(tmp_path, {4: np.ones((9, 12), np.uint8)})
    with pytest.raises(ValueError, match=f"mask {tmp_path / 'annotations' / 'trimaps' / '4.png'}"
                                         " is 12x9 but image .* is 12x10"):
        _scan_segmentation(tmp_path)


def _coco(root, image_entry: dict, size=(12, 10)) -> None:
    import json

    _save(root / "train" / "a.png", size=size)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    data = {"images": [image_entry], "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}]}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(data))


def _scan_coco(root) -> None:
    from vision_jax.data.config import data_section
    from vision_jax.data.detection import detection_spec
    from vision_jax.data.scan import scan_examples
    from vision_jax.data.sources import validate_dataset
    from vision_jax.training.defaults import default_config

    config = default_config()
    config.dataset, config.train_split, config.eval_split = f"coco:{root}", "train", "train"
    config.image_size = 8
    data = data_section(config)
    validate_dataset(data.dataset, {"config.train_split": "train"})
    scan_examples(data, detection_spec(4))


def test_a_coco_image_entry_without_width_is_named(tmp_path):
    _coco(tmp_path, {"id": 1, "file_name": "a.png", "height": 10})
    json_path = tmp_path / "annotations" / "instances_train.json"
    with pytest.raises(ValueError) as error:
        _scan_coco(tmp_path)
    assert str(error.value) == (
        f"config.dataset='coco:{tmp_path}', split 'train': image entry 'a.png' in {json_path} "
        "has no width; COCO image entries need id, file_name, width and height (in pixels)")


def test_a_coco_image_of_another_size_than_its_entry_is_named(tmp_path):
    _coco(tmp_path, {"id": 1, "file_name": "a.png", "height": 10, "width": 12}, size=(14, 10))
    with pytest.raises(ValueError, match=f"^config.dataset='coco:{tmp_path}': image "
                                         f"{tmp_path / 'train' / 'a.png'} is 14x10 but its COCO "
                                         "entry says 12x10"):
        _scan_coco(tmp_path)


def test_set_channels_convert_a_mix_instead_of_refusing_it(tmp_path):
    """`config.image_channels` set: the scan and the source agree that files of other channel
    counts are converted (unset, the mix is refused, as above)."""
    from vision_jax.data.config import data_section
    from vision_jax.data.pipeline import make_train_iterator, validate_data_config
    from vision_jax.training.defaults import default_config

    _dataset(tmp_path / "pets")
    _save(tmp_path / "pets" / "cat" / "0_grey.png", mode="L")
    config = default_config()
    config.dataset, config.image_size, config.num_classes = f"folder:{tmp_path / 'pets'}", 8, 2
    config.batch_size = 7
    with pytest.raises(ValueError, match="images mix channel counts.*or set "
                                         r"config.image_channels \(1 or 3\) to convert them$"):
        validate_data_config(data_section(config))
    for channels in (1, 3):
        config.image_channels = channels
        data = data_section(config)
        validate_data_config(data)
        batch = next(make_train_iterator(data, process_index=0, process_count=1))
        assert batch["image"].shape == (7, 8, 8, channels)
