"""Trains one small config under several sharding variants in ONE process (run it with
8 simulated devices) and writes what the tests compare: final variables (.npz), the
per-step train sums and the eval metrics (.json), and where each parameter lives.

    python tests/parallel_probe.py OUT DATA_DIR mnist|resnet STEPS VARIANT...

VARIANT is `jit` (plain data parallelism), `shard_map`, or `fsdp` (mesh 2 x 4 with a
small `fsdp_min_size` so the tiny test models' kernels do get sharded). All variants
start from the same initial state (built once, then placed with each variant's
shardings), so compiling the initialiser once serves them all.
"""

from __future__ import annotations

import json
import sys

from vision_jax.parallel import distributed

distributed.initialize()

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import traverse_util  # noqa: E402

from vision_jax.training import loop  # noqa: E402

FSDP_MIN_SIZE = 1024


def make_config(model: str, data_dir: str, steps: int):
    if model == "mnist":
        from configs.mnist_cnn import get_config

        config = get_config("smoke")
        # Dropout and augmentation on: both are keyed per example, so every strategy and
        # device count draws the same masks.
        assert config.model.dropout_rate > 0
        config.augment.flip = True
        config.augment.crop_padding = 2
    else:  # batch norm: the statistics must be those of the global batch everywhere
        from configs.cifar10_resnet18 import get_config

        config = get_config("smoke")
        config.model.width = 8
        config.model.stage_sizes = (1, 1)
        config.image_size = 16
    config.data_dir = data_dir
    config.num_steps = steps
    config.batch_size = 32
    config.eval_batch_size = 48
    config.eval_split = "test[:100]"
    config.progress_bar = False
    return config


def apply_variant(config, variant: str):
    if variant == "shard_map":
        config.sharding.strategy = "shard_map"
    elif variant == "fsdp":
        config.mesh.data, config.mesh.fsdp = 2, 4
        config.sharding.fsdp_min_size = FSDP_MIN_SIZE
    elif variant != "jit":
        raise ValueError(f"unknown variant {variant!r}")
    return config


def main(out: str, data_dir: str, model: str, steps: str, *variants: str) -> None:
    initial = None
    for variant in variants:
        config = apply_variant(make_config(model, data_dir, int(steps)), variant)
        exp = loop.build_experiment(config, f"{out}/{variant}")
        init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
        if initial is None:
            initial = jax.device_get(loop.init_state(exp, init_rng))
        shardings = jax.tree.map(lambda s: s.sharding, exp.abstract_state)
        state = jax.device_put(initial, shardings)
        batches = loop.train_iterator(exp)
        train = []
        for _ in range(config.num_steps):
            state, sums = exp.train_step(state, exp.global_batch(next(batches)), train_rng)
            train.append({k: float(v) for k, v in jax.device_get(sums).items()})
        accumulator = loop.evaluate(exp, state)
        variables = traverse_util.flatten_dict(
            {"params": state.params, "batch_stats": state.batch_stats}, sep="/")
        np.savez(f"{out}/{variant}.npz",
                 **{k: np.asarray(jax.device_get(v)) for k, v in variables.items()})
        opt_specs = {"/".join(map(str, p)): str(leaf.sharding.spec) for p, leaf in
                     jax.tree_util.tree_flatten_with_path(state.opt_state)[0]}
        record = {
            "train": train,
            "eval": exp.task.summarize(accumulator),
            "eval_count": float(accumulator.result()["count"]),
            "specs": {k: str(v.sharding.spec) for k, v in variables.items()},
            "shard_shapes": {k: list(v.addressable_shards[0].data.shape)
                             for k, v in variables.items()},
            "opt_specs": opt_specs,
        }
        with open(f"{out}/{variant}.json", "w") as f:
            json.dump(record, f)
        print(f"probe {variant} done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
