"""A checkpoint written on 8 devices restores onto another device count or sharding strategy
and training continues to the same parameters as a run that was never interrupted."""

from __future__ import annotations

import shutil

import jax
import numpy as np
import pytest
from train_cli import run_train

from vision_jax.training import loop


def _final_state(workdir):
    """The workdir's latest checkpoint restored in this 1-device process, whatever mesh
    and strategy wrote it."""
    config = loop.load_workdir_config(str(workdir))
    config.mesh.data, config.mesh.fsdp = -1, 1
    config.sharding.strategy = "jit"
    exp = loop.build_experiment(config, str(workdir))
    state, _ = exp.checkpointer.restore(exp.abstract_state)
    exp.checkpointer.close()
    return jax.device_get(state)


# (devices, extra overrides) of the run that takes over at step 2.
CONTINUATIONS = {
    "2 devices, shard_map": (2, ["--config.sharding.strategy=shard_map"]),
    "1 device": (1, []),
    "8 devices, fsdp": (8, ["--config.mesh.data=2", "--config.mesh.fsdp=4",
                            "--config.sharding.fsdp_min_size=1024"]),
}


@pytest.mark.slow  # 90 s on 2 cores; 1-vs-8 device agreement runs in CI (test_sharding)
def test_a_checkpoint_from_8_devices_continues_elsewhere(tmp_path, digits_data_dir):
    # A constant learning rate (the schedule does not depend on total steps) and no dropout
    # (shard_map draws masks per device), so continuing must reproduce the reference.
    overrides = [f"--config.data_dir={digits_data_dir}", "--config.num_steps=4",
                 "--config.batch_size=32", "--config.eval_batch_size=16",
                 "--config.eval_split=test[:32]", "--config.model.dropout_rate=0.0",
                 "--config.schedule.name=constant", "--config.log_every_steps=2",
                 "--config.eval_every_steps=4", "--config.checkpoint_every_steps=2"]
    reference_dir = tmp_path / "reference"
    run_train(reference_dir, *overrides, devices=8)
    reference = _final_state(reference_dir)
    assert int(reference.step) == 4

    for name, (devices, extra) in CONTINUATIONS.items():
        # The reference's workdir as it was after step 2: its last checkpoint removed.
        workdir = tmp_path / name.replace(" ", "_").replace(",", "")
        shutil.copytree(reference_dir, workdir)
        shutil.rmtree(workdir / "checkpoints" / "4")
        result = run_train(workdir, *overrides, *extra, devices=devices)
        assert "resuming from the checkpoint at step 2" in result.stdout, name
        state = _final_state(workdir)
        assert int(state.step) == 4, name
        jax.tree.map(lambda x, y, n=name: np.testing.assert_allclose(
            x, y, rtol=1e-4, atol=1e-5, err_msg=n), state.params, reference.params)
        jax.tree.map(lambda x, y, n=name: np.testing.assert_allclose(
            x, y, rtol=1e-4, atol=1e-5, err_msg=n), state.opt_state, reference.opt_state)
