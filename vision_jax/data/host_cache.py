"""Small splits, decoded and prepared once and held in host memory as stacked arrays.

Reading a record from a TFDS array_record file means parsing its protobuf and decoding its
PNG or JPEG, several hundred microseconds of host CPU per image. On a small dataset that is
the same work again every epoch, and it competes with the train step for the host's cores
(on a 2-core machine the digits convnet's step costs about as much per image as reading it).
What the host does is deterministic (decode, fixed-size resize, channel conversion, box
padding; the augmentations run on device), so a prepared example is the same every time it
is read: a split whose prepared examples fit in ``config.host_cache_gib`` is prepared once
and served from memory. Batches are identical with or without the cache (tested), so the
field may change between runs of one workdir.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grain
import numpy as np

from vision_jax.data import transforms

_GIB = 2**30


def example_nbytes(example: dict[str, Any]) -> int:
    """The bytes of an example's arrays."""
    return sum(np.asarray(value).nbytes for value in example.values())


class PreparedArrays:
    """A random-access source of prepared examples, all of them held as one array per key.

    ``self[i]`` is ``prepare(source[i])`` as views of the stacked arrays (no copy).
    """

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self._length = len(next(iter(arrays.values())))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {key: value[index] for key, value in self.arrays.items()}

    def __repr__(self) -> str:
        return f"PreparedArrays({self._length} examples, {self.nbytes / 2**20:.1f} MiB)"

    @property
    def nbytes(self) -> int:
        return sum(value.nbytes for value in self.arrays.values())


def _prepare_all(source, prepare: Callable[[dict[str, Any]], dict[str, Any]]
                 ) -> dict[str, np.ndarray]:
    """Every example of `source`, in index order, prepared and stacked. Threads overlap the
    decoders (PIL releases the GIL while it decodes)."""
    dataset = grain.MapDataset.source(source).map(prepare).batch(256, batch_fn=transforms.stack)
    parts = list(dataset.to_iter_dataset(grain.ReadOptions(num_threads=8,
                                                           prefetch_buffer_size=16)))
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def maybe_cache(source, prepare: Callable[[dict[str, Any]], dict[str, Any]],
                limit_gib: float, what: str):
    """`source` prepared once and held in memory when its prepared examples fit in
    `limit_gib` (estimated from the first one), else `source` itself; `prepare` maps a
    record to an example of fixed-size arrays. `what` names the split in the log line."""
    if limit_gib <= 0 or len(source) == 0 or isinstance(source, PreparedArrays):
        return source
    estimate = example_nbytes(prepare(source[0])) * len(source)
    if estimate > limit_gib * _GIB:
        logging.info("%s: %.2f GiB prepared is over config.host_cache_gib=%g; reading it "
                     "from storage every epoch", what, estimate / _GIB, limit_gib)
        return source
    start = time.perf_counter()
    cached = PreparedArrays(_prepare_all(source, prepare))
    logging.info("%s: %d examples prepared once and held in memory (%.1f MiB, %.1f s)", what,
                 len(cached), cached.nbytes / 2**20, time.perf_counter() - start)
    return cached
