"""What every task gives the trainer, and the pieces tasks share.

The loop calls only these methods, so adding a task never touches it:

- `loss(outputs, batch) -> (scalar loss, metric sums)` inside the jitted train step;
- `eval_outputs(outputs, batch) -> pytree` inside the jitted eval step (sums, or
  per-example results such as decoded boxes);
- `new_accumulator()` whose `add(eval_outputs)` collects a split on the host;
- `summarize(accumulator or sums) -> {metric: float}`;
- `write_report(accumulator, out_dir, prefix)` at the end of a run;
- `write_examples(batch, outputs, out_dir, prefix)`: pictures of a few eval
  images (host arrays, normalised as fed) with their predictions (may do nothing);
- `write_predictions(images, outputs, names, out_dir)` for `vision_jax.predict`;
- `example_spec(config)`: how the data pipeline builds this task's batches.

Batches always carry "image" (float32 NHWC) and, in evaluation, "mask" (1 for a
real example, 0 for padding); targets use other keys.
"""

from __future__ import annotations

import jax
import numpy as np


class SumAccumulator:
    """Adds metric sums batch by batch. The additions stay on device (asynchronous);
    `result()` fetches the totals once."""

    def __init__(self):
        self._totals = None

    def add(self, sums) -> None:
        self._totals = sums if self._totals is None else jax.tree.map(
            lambda a, b: a + b, self._totals, sums)

    def result(self) -> dict:
        if self._totals is None:
            raise ValueError("no batches were evaluated")
        return jax.tree.map(np.asarray, jax.device_get(self._totals))
