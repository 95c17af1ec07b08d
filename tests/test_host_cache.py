"""The host cache: a small split prepared once and held in memory gives the very batches the
per-example read path gives (train and eval, over epochs and processes), their iterator
states are interchangeable, and a split over the limit is read from storage."""

import json
import logging

import numpy as np
import pytest

from vision_jax.data import data_section, default_data_config, host_cache, pipeline  # noqa: F401
from vision_jax.data.pipeline import ExampleSpec, make_eval_iterator, make_train_iterator


def _boxes_source(size: int) -> list[dict]:
    """Records of different image sizes (so `prepare` resizes and scales boxes) with a
    varying number of boxes (so it pads)."""
    rng = np.random.default_rng(0)
    records = []
    for index in range(size):
        height, width = 10 + index % 3, 12
        count = index % 4
        corners = rng.uniform(0, 8, (count, 2))
        records.append({
            "image": rng.integers(0, 256, (height, width, 3), np.uint8),
            "objects": {"boxes": np.concatenate([corners, corners + 2], axis=1),
                        "classes": np.arange(count) % 2}})
    return records


def _select(record: dict) -> dict:
    return {"image": record["image"], "boxes": record["objects"]["boxes"],
            "classes": record["objects"]["classes"]}


BOXES = ExampleSpec(select=_select, keys=frozenset({"boxes", "classes"}), max_boxes=5)


def _config(cache_gib: float, **fields):
    config = default_data_config()
    config.update({"image_size": 8, "batch_size": 6, "eval_batch_size": 4, "seed": 5,
                   "host_cache_gib": cache_gib, **fields})
    return data_section(config)


def _assert_equal(first: list[dict], second: list[dict]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
            assert a[key].dtype == b[key].dtype, key


@pytest.mark.parametrize("process_count", [1, 2])
def test_cached_train_batches_equal_the_read_ones_over_epochs(process_count):
    source = _boxes_source(17)  # 17 examples, global batch 6: batches straddle epochs
    batches = {}
    for gib in (1.0, 0.0):
        batches[gib] = [b for p in range(process_count) for b in _take(make_train_iterator(
            _config(gib), process_index=p, process_count=process_count, source=source,
            spec=BOXES), 9)]
    _assert_equal(batches[1.0], batches[0.0])
    assert batches[1.0][0]["boxes"].shape == (6 // process_count, 5, 4)


def test_cached_eval_batches_equal_the_read_ones():
    source = _boxes_source(11)  # padded to 12 for a global eval batch of 4
    for process_count in (1, 2):
        for p in range(process_count):
            cached, read = (list(make_eval_iterator(
                _config(gib), "test", process_index=p, process_count=process_count,
                source=source, spec=BOXES)) for gib in (1.0, 0.0))
            _assert_equal(cached, read)
            assert sum(float(b["mask"].sum()) for b in cached) > 0


def test_iterator_state_carries_over_between_cached_and_read(digits_data_dir):
    def iterator(gib):
        return make_train_iterator(_config(gib, data_dir=digits_data_dir, image_size=28),
                                   process_index=0, process_count=1)

    cached = iterator(1.0)
    _take(cached, 4)
    state = json.loads(json.dumps(cached.get_state()))  # what the checkpoint stores
    expected = _take(cached, 3)
    read = iterator(0.0)
    read.set_state(state)
    _assert_equal(_take(read, 3), expected)


def test_every_epoch_takes_each_example_once_in_its_own_order():
    orders = [pipeline.epoch_order(50, 7, epoch) for epoch in range(3)]
    for order in orders:
        assert sorted(order) == list(range(50))
    assert not np.array_equal(orders[0], orders[1])
    positions = np.arange(40, 140)  # straddles epochs 0, 1 and 2
    rows = pipeline.stream_rows(positions, 50, 7)
    np.testing.assert_array_equal(rows[:10], orders[0][40:])
    np.testing.assert_array_equal(rows[10:60], orders[1])


def test_a_split_over_the_limit_is_read_from_storage(caplog):
    source = _boxes_source(8)
    example = pipeline.host_example(_config(1.0), BOXES)
    with caplog.at_level(logging.INFO):
        assert host_cache.maybe_cache(source, example.prepare, 1e-9, "split x") is source
    assert "over config.host_cache_gib" in caplog.text
    cached = host_cache.maybe_cache(source, example.prepare, 1.0, "split x")
    assert isinstance(cached, host_cache.PreparedArrays) and len(cached) == 8
    for index in (0, 5):
        _assert_equal([cached[index]], [example.prepare(source[index])])
    assert host_cache.maybe_cache(source, example.prepare, 0, "split x") is source


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]
