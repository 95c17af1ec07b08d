"""`vision_jax.predict` reads and prepares images through the data pipeline's one host path:
the batch it builds equals the eval pipeline's for the same files."""

import numpy as np
import pytest
from PIL import Image

from vision_jax import predict
from vision_jax.data import (
    DataSection,
    DatasetInfo,
    data_section,
    default_data_config,
    make_eval_iterator,
)


def test_predict_batches_equal_the_eval_pipelines(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    rgb = rng.integers(0, 256, (17, 9, 3), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "b.png")
    paths = predict.expand_images([str(tmp_path)])
    raw = predict.load_images(paths)
    assert [r.shape for r in raw] == [(20, 30, 1), (17, 9, 3)]
    config = default_data_config()
    config.image_size, config.image_channels, config.eval_batch_size = 12, 3, 2
    info = DatasetInfo(name="files", num_classes=2, class_names=None, image_shape=None,
                       split_sizes={}, num_channels=3)
    batch = predict.preprocess(data_section(config), info, raw)
    assert batch.shape == (2, 12, 12, 3) and batch.dtype == np.uint8
    records = [{"image": image, "label": 0} for image in raw]
    (expected,) = list(make_eval_iterator(data_section(config), process_index=0, process_count=1,
                                          source=records))
    np.testing.assert_array_equal(batch, expected["image"])


def test_an_unreadable_file_is_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(FileNotFoundError, match=r"bad\.png is not a readable image"):
        predict.load_images([str(tmp_path / "bad.png")])


def test_config_without_image_channels_uses_the_datasets():
    data = DataSection(dataset="files", image_size=4)  # image_channels 0: the dataset's
    info = DatasetInfo(name="x", num_classes=2, class_names=None, image_shape=None,
                       split_sizes={}, num_channels=1)
    batch = predict.preprocess(data, info, [np.full((6, 6, 3), 200, np.uint8)])
    assert batch.shape == (1, 4, 4, 1)
