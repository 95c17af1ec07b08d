"""Grain pipelines: determinism, resume, per-process sharding, eval padding; uint8 batches
keyed by stream position (the augmentation runs on device, see test_augment.py)."""

import json

import numpy as np
import pytest

from vision_jax.augment import augment_section
from vision_jax.data import (
    data_section,
    default_data_config,
    make_eval_iterator,
    make_train_iterator,
    validate_data_config,
)


def _train(config, **kwargs):
    """The train iterator over `config`'s data section (what the loop hands the pipeline)."""
    return make_train_iterator(data_section(config), **kwargs)


def _eval(config, *args, **kwargs):
    return make_eval_iterator(data_section(config), *args, **kwargs)


def _validate(config, process_count=1):
    """The checks a run makes before any pipeline: the sections (each field beside its
    declaration), then the dataset against them."""
    augment_section(config.augment)
    return validate_data_config(data_section(config), process_count)


def _synthetic_source(size):
    """Records whose 4x4 image encodes the record's index in two pixels."""
    records = []
    for index in range(size):
        image = np.zeros((4, 4, 1), np.uint8)
        image[0, 0, 0], image[0, 1, 0] = index % 256, index // 256
        records.append({"image": image, "label": index % 3})
    return records


def _ids(batch):
    pixels = batch["image"].astype(np.int64)
    return pixels[:, 0, 0, 0] + 256 * pixels[:, 0, 1, 0]


def _synthetic_config(batch_size=8, eval_batch_size=8):
    config = default_data_config()
    config.image_size = 4
    config.batch_size = batch_size
    config.eval_batch_size = eval_batch_size
    return config  # no augmentation, identity normalisation: ids survive


@pytest.fixture
def digits_config(digits_data_dir):
    config = default_data_config()
    config.data_dir = digits_data_dir
    config.batch_size = 16
    config.eval_batch_size = 256
    config.seed = 3
    config.normalize.mean = (0.13,)
    config.normalize.std = (0.31,)
    config.augment.crop_padding = 2
    config.augment.flip = True
    config.augment.scale = (0.9, 1.1)
    config.augment.rotate_degrees = 10.0
    config.augment.color_jitter = 0.2
    return config


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["label"], y["label"])
        np.testing.assert_array_equal(x["index"], y["index"])


def test_train_batches_have_the_documented_layout(digits_config):
    _validate(digits_config)
    iterator = _train(digits_config, process_index=0, process_count=1)
    batch, second = next(iterator), next(iterator)
    assert set(batch) == {"image", "label", "index"}
    assert batch["image"].shape == (16, 28, 28, 1) and batch["image"].dtype == np.uint8
    assert batch["label"].shape == (16,) and batch["label"].dtype == np.int32
    # Each row's position in the global stream: what keys its augmentation on device.
    np.testing.assert_array_equal(batch["index"], np.arange(16))
    np.testing.assert_array_equal(second["index"], np.arange(16, 32))
    assert batch["index"].dtype == np.int32
    iterator.close()


def test_same_seed_same_stream_other_seed_other_stream(digits_config):
    _validate(digits_config)
    first = _take(_train(digits_config, process_index=0, process_count=1), 3)
    again = _take(_train(digits_config, process_index=0, process_count=1), 3)
    _assert_same_batches(first, again)
    digits_config.seed = 4
    other = _take(_train(digits_config, process_index=0, process_count=1), 1)
    assert not np.array_equal(first[0]["label"], other[0]["label"])


def test_resume_from_json_state_continues_exactly(digits_config):
    _validate(digits_config)
    iterator = _train(digits_config, process_index=0, process_count=1)
    _take(iterator, 3)
    state = json.loads(json.dumps(iterator.get_state()))  # what the checkpoint stores
    expected = _take(iterator, 3)
    resumed = _train(digits_config, process_index=0, process_count=1)
    resumed.set_state(state)
    _assert_same_batches(_take(resumed, 3), expected)


def test_two_processes_partition_every_epoch():
    config = _synthetic_config(batch_size=8)
    source = _synthetic_source(40)
    per_process = [
        [_ids(b) for b in _take(_train(config, process_index=p,
                                                    process_count=2, source=source), 10)]
        for p in range(2)
    ]
    assert all(len(ids) == 4 for ids in per_process[0] + per_process[1])  # 8 // 2
    epochs = []
    for epoch in range(2):  # 40 examples / global batch 8 = 5 batches per epoch
        shards = [np.concatenate(ids[5 * epoch:5 * epoch + 5]) for ids in per_process]
        assert not set(shards[0]) & set(shards[1])
        union = np.sort(np.concatenate(shards))
        np.testing.assert_array_equal(union, np.arange(40))
        # Global batch k = process 0's batch k, then process 1's.
        epochs.append(np.concatenate([np.concatenate([per_process[p][k] for p in range(2)])
                                      for k in range(5 * epoch, 5 * epoch + 5)]))
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled each epoch
    assert not np.array_equal(epochs[0], np.arange(40))  # shuffled at all


def test_global_batch_does_not_depend_on_process_count(digits_config):
    _validate(digits_config)
    single = _take(_train(digits_config, process_index=0, process_count=1), 2)
    shards = [_take(_train(digits_config, process_index=p, process_count=2), 2)
              for p in range(2)]
    b = digits_config.batch_size // 2
    for k in range(2):
        # Rows [p*b, (p+1)*b) of global batch k are process p's batch k, in order: the rows
        # its devices hold in the global array.
        for j in range(digits_config.batch_size):
            row = shards[j // b][k]
            np.testing.assert_array_equal(single[k]["image"][j], row["image"][j % b])
            assert single[k]["label"][j] == row["label"][j % b]
            assert single[k]["index"][j] == row["index"][j % b] == k * 16 + j


def test_train_iterator_crosses_epochs_without_stopping():
    config = _synthetic_config(batch_size=4)
    iterator = _train(config, process_index=0, process_count=1,
                                   source=_synthetic_source(10))
    ids = np.concatenate([_ids(b) for b in _take(iterator, 10)])  # 4 epochs of 10
    for epoch in range(4):
        np.testing.assert_array_equal(np.sort(ids[10 * epoch:10 * epoch + 10]), np.arange(10))


@pytest.mark.parametrize("size, eval_batch_size, process_count", [
    (37, 8, 2), (5, 8, 2), (16, 8, 2), (10, 6, 3), (7, 4, 1)])
def test_eval_padding_gives_equal_batch_counts_and_each_example_once(
        size, eval_batch_size, process_count):
    config = _synthetic_config(eval_batch_size=eval_batch_size)
    source = _synthetic_source(size)
    expected_batches = -(-size // eval_batch_size)
    real_ids = []
    for p in range(process_count):
        batches = _eval(config, process_index=p,
                                     process_count=process_count, source=source)
        listed = list(batches)
        assert len(batches) == len(listed) == expected_batches
        for batch in listed:
            assert batch["image"].shape == (eval_batch_size // process_count, 4, 4, 1)
            assert batch["mask"].dtype == np.float32
            assert set(np.unique(batch["mask"])) <= {0.0, 1.0}
            real = batch["mask"] == 1
            real_ids.extend(_ids(batch)[real])
            np.testing.assert_array_equal(batch["label"][real], _ids(batch)[real] % 3)
        assert len(list(batches)) == expected_batches  # re-iterable
    np.testing.assert_array_equal(np.sort(real_ids), np.arange(size))


def test_eval_over_digits_test_split_with_two_processes(digits_config):
    _validate(digits_config)
    images, labels = [], []
    counts = []
    for p in range(2):
        batches = list(_eval(digits_config, process_index=p, process_count=2))
        counts.append(len(batches))
        for batch in batches:
            real = batch["mask"] == 1
            images.extend(batch["image"][real])
            labels.extend(batch["label"][real])
    assert counts == [4, 4]  # ceil(1000 / 256)
    assert len(images) == 1000
    assert len({image.tobytes() for image in images}) == 1000
    np.testing.assert_array_equal(np.bincount(labels), [100] * 10)
    # Eval images are the source's uint8 pixels, untouched (normalised on device).
    from vision_jax.data import open_source

    source, _ = open_source("builtin:digits", "test", data_dir=digits_config.data_dir)
    expected = {np.asarray(source[i]["image"], np.uint8).tobytes() for i in range(len(source))}
    assert {image.tobytes() for image in images} == expected


def test_worker_processes_give_the_in_process_stream_and_resume(digits_config):
    _validate(digits_config)
    expected = _take(_train(digits_config, process_index=0, process_count=1), 4)
    digits_config.num_data_workers = 1
    iterator = _train(digits_config, process_index=0, process_count=1)
    try:
        _assert_same_batches(_take(iterator, 2), expected[:2])
        state = json.loads(json.dumps(iterator.get_state()))
    finally:
        iterator.close()
    resumed = _train(digits_config, process_index=0, process_count=1)
    try:
        resumed.set_state(state)
        _assert_same_batches(_take(resumed, 2), expected[2:])
    finally:
        resumed.close()


@pytest.mark.parametrize("field, value, process_count, message", [
    ("batch_size", 10, 4, r"config\.batch_size=10 must be a positive multiple of the process "
                          r"count 4; set it to e\.g\. 8"),
    ("eval_batch_size", 3, 2, r"config\.eval_batch_size=3 must be a positive multiple"),
    ("train_split", "validation", 1, r"config\.train_split='validation'.*available: test, train"),
    ("normalize.mean", (0.1, 0.2, 0.3), 1, r"config\.normalize\.mean=.*1 channel"),
    ("augment.scale", (1.2, 0.8), 1, r"config\.augment\.scale"),
    ("dataset", "builtin:missing", 1, r"config\.dataset='builtin:missing'"),
])
def test_bad_config_fails_before_any_pipeline(digits_config, field, value, process_count,
                                              message):
    digits_config.update_from_flattened_dict({field: value})
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        _validate(digits_config, process_count=process_count)


def test_eval_uses_the_given_split(digits_config):
    _validate(digits_config)
    batches = _eval(digits_config, "train", process_index=0, process_count=1)
    assert batches.num_examples == 4000 and len(batches) == 16
    first = next(iter(batches))
    assert first["mask"].sum() == 256


def test_missing_config_field_is_named(digits_config):
    # The dataset has no default: a config without one is told which field to set.
    del digits_config["dataset"]
    with pytest.raises(ValueError, match=r"config\.dataset"):
        _validate(digits_config)


def test_image_channels_converts_grey_digits_to_rgb(digits_config):
    digits_config.image_channels = 3
    digits_config.normalize.mean = (0.1, 0.2, 0.3)
    digits_config.normalize.std = (1.0, 1.0, 1.0)
    _validate(digits_config)
    batch = next(iter(_eval(digits_config, process_index=0, process_count=1)))
    assert batch["image"].shape == (256, 28, 28, 3)
    # The same grey pixel in every channel.
    np.testing.assert_array_equal(batch["image"][..., 1], batch["image"][..., 0])
    np.testing.assert_array_equal(batch["image"][..., 2], batch["image"][..., 0])
    digits_config.image_channels = 2
    with pytest.raises(ValueError, match=r"config\.image_channels=2 must be"):
        _validate(digits_config)


def test_folder_dataset_of_mixed_sizes_is_resized_into_batches(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for i, (height, width) in enumerate([(20, 30), (33, 17), (16, 16), (40, 40)]):
            directory = tmp_path / "photos" / split / ("a" if i % 2 else "b")
            directory.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(directory / f"{i}.jpg")
    config = default_data_config()
    config.dataset = f"folder:{tmp_path / 'photos'}"
    config.image_size = 12
    config.batch_size = 4
    config.eval_batch_size = 4
    config.augment.flip = True
    config.augment.crop_padding = 2
    info = _validate(config)
    assert info.image_shape is None and info.num_channels == 3 and info.num_classes == 2
    batch = next(_train(config, process_index=0, process_count=1))
    assert batch["image"].shape == (4, 12, 12, 3)
    assert sorted(batch["label"]) == [0, 0, 1, 1]
    (eval_batch,) = list(_eval(config, process_index=0, process_count=1))
    assert eval_batch["mask"].tolist() == [1, 1, 1, 1]
