"""Sharding strategies give the same training: `jit` (GSPMD, data parallel), `shard_map`
(per-device step with explicit collectives) and FSDP (parameters and optimizer state split
over the `fsdp` axis) end with the same parameters. Plus the FSDP rules themselves and the
config errors around them."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P
from train_cli import REPO, cpu_env, run_train

from vision_jax.parallel import sharding_rules
from vision_jax.training import validate
from vision_jax.training.defaults import default_config
from vision_jax.training.state import TrainState

# --- the three strategies agree (8 simulated devices, one subprocess per model) -------------


def _probe(tmp_path, data_dir, model, steps=3):
    command = [sys.executable, str(REPO / "tests" / "parallel_probe.py"), str(tmp_path),
               data_dir, model, str(steps), "jit", "shard_map", "fsdp"]
    result = subprocess.run(command, cwd=REPO, env=cpu_env(8), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return {v: (dict(np.load(tmp_path / f"{v}.npz")),
                json.loads((tmp_path / f"{v}.json").read_text()))
            for v in ("jit", "shard_map", "fsdp")}


@pytest.mark.parametrize("model", ["mnist", pytest.param("resnet", marks=pytest.mark.slow)])
def test_jit_shard_map_and_fsdp_train_alike(tmp_path, digits_data_dir, model):
    runs = _probe(tmp_path, digits_data_dir, model)
    reference, ref_record = runs["jit"]
    if model == "resnet":
        assert any(k.startswith("batch_stats/") for k in reference)
    for variant in ("shard_map", "fsdp"):
        variables, record = runs[variant]
        assert variables.keys() == reference.keys()
        for key in reference:
            np.testing.assert_allclose(variables[key], reference[key], rtol=1e-4, atol=1e-5,
                                       err_msg=f"{variant}: {key}")
        for a, b in zip(record["train"], ref_record["train"], strict=True):
            assert a.keys() == b.keys()
            for k in a:
                assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-5), (variant, k)
        assert record["eval_count"] == ref_record["eval_count"] == 100
        for k, v in record["eval"].items():
            assert v == pytest.approx(ref_record["eval"][k], rel=1e-5, abs=1e-6), (variant, k)

    # FSDP really splits: the kernels above the threshold live in quarters on each device,
    # and the optimizer's copies of them (Adam's mu and nu, SGD's trace) follow.
    _, fsdp = runs["fsdp"]
    sharded = [k for k, spec in fsdp["specs"].items() if "fsdp" in spec]
    assert sharded and all(k.endswith("kernel") for k in sharded)
    for key in sharded:
        full, local = reference[key].shape, tuple(fsdp["shard_shapes"][key])
        assert np.prod(local) * 4 == np.prod(full), key
    mirrored = [p for p, spec in fsdp["opt_specs"].items() if "fsdp" in spec]
    assert len(mirrored) >= len(sharded)
    for path in mirrored:
        assert any(all(part in path for part in key.split("/")[1:]) for key in sharded), path
    for variant in ("jit", "shard_map"):
        assert all(spec == "P()" for spec in runs[variant][1]["specs"].values())


# --- the FSDP rule and its overrides ----------------------------------------------------------


def _state(params: dict, tx=None) -> TrainState:
    tx = tx or optax.adam(1e-3)
    params = jax.tree.map(lambda s: jnp.zeros(s, jnp.float32), params,
                          is_leaf=lambda x: isinstance(x, tuple))
    return jax.eval_shape(lambda: TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                             batch_stats={}, opt_state=tx.init(params)))


def test_fsdp_spec_picks_the_largest_divisible_dimension():
    assert sharding_rules.fsdp_spec((3, 3, 64, 128), 4, 0) == P(None, None, None, "fsdp")
    assert sharding_rules.fsdp_spec((512, 10), 4, 0) == P("fsdp", None)
    # 10 is the largest dimension but 4 does not divide it.
    assert sharding_rules.fsdp_spec((10, 8), 4, 0) == P(None, "fsdp")
    # Ties go to the last dimension (a kernel's output channels).
    assert sharding_rules.fsdp_spec((64, 64), 2, 0) == P(None, "fsdp")


def test_fsdp_spec_replicates_small_indivisible_and_unsplit():
    assert sharding_rules.fsdp_spec((3, 3, 8, 8), 4, min_size=1000) == P()  # 576 < 1000
    assert sharding_rules.fsdp_spec((3, 5, 7), 4, min_size=0) == P()
    assert sharding_rules.fsdp_spec((), 4, min_size=0) == P()
    assert sharding_rules.fsdp_spec((1024, 1024), 1, min_size=0) == P()


def test_optimizer_state_mirrors_parameters_and_counters_stay_replicated():
    state = _state({"dense": {"kernel": (256, 64), "bias": (64,)},
                    "head": {"kernel": (64, 16)}})
    specs = sharding_rules.state_partition_specs(state, {"data": 2, "fsdp": 4}, min_size=4096)
    assert specs.params["dense"]["kernel"] == P("fsdp", None)
    assert specs.params["dense"]["bias"] == P()  # 64 elements < 4096
    assert specs.params["head"]["kernel"] == P()  # 1024 elements < 4096
    adam = specs.opt_state[0]
    for moment in (adam.mu, adam.nu):
        assert moment == specs.params
    assert adam.count == P() and specs.step == P()


def test_a_rule_overrides_and_the_first_match_wins():
    state = _state({"dense": {"kernel": (256, 64)}, "head": {"kernel": (64, 16)}})
    rules = (("head/kernel", (None, ("data", "fsdp"))),  # 16 over all 8 devices
             ("kernel", ()),  # every other kernel replicated
             ("head", ("fsdp",)))  # never reached: the first rule matched
    specs = sharding_rules.state_partition_specs(state, {"data": 2, "fsdp": 4}, min_size=0,
                                                 rules=rules)
    assert specs.params["head"]["kernel"] == P(None, ("data", "fsdp"))
    assert specs.params["dense"]["kernel"] == P()
    assert specs.opt_state[0].mu["head"]["kernel"] == P(None, ("data", "fsdp"))


def test_rules_from_json_lists_are_accepted():
    # config.json turns tuples into lists; a restored run reads them back like that.
    rules = [["kernel", [None, "fsdp"]]]
    assert sharding_rules.compile_rules(rules)[0][1] == (None, "fsdp")


@pytest.mark.parametrize("rules, message", [
    ((("kernel", ("model",)),), "unknown mesh axis 'model'"),
    ((("kernel", (None, None, "fsdp")),), "gives 3 dimensions but 'dense/kernel'"),
    ((("kernel", ("fsdp", None)),), "splits dimension 0 (size 6)"),
    ((("[", ()),), "is not a valid regex"),
    ((("kernel",),), "must be a pair (regex, spec)"),
    ((("kernel", ("fsdp", "fsdp")),), "a mesh axis may shard only one dimension"),
])
def test_bad_rules_are_clear_errors(rules, message):
    state = _state({"dense": {"kernel": (6, 8)}})
    with pytest.raises(ValueError, match="config.sharding.rules") as info:
        sharding_rules.state_partition_specs(state, {"data": 2, "fsdp": 4}, 0, rules)
    assert message in str(info.value)


def test_an_fsdp_size_that_divides_no_parameter_is_a_clear_error():
    state = _state({"conv": {"kernel": (3, 3, 5, 7)}})
    with pytest.raises(ValueError) as info:
        sharding_rules.state_partition_specs(state, {"data": 2, "fsdp": 4}, min_size=0)
    assert "config.mesh.fsdp=4 shards no parameter" in str(info.value)
    assert "config.sharding.fsdp_min_size" in str(info.value)
    # Divisible but all below the threshold: the same error, naming the threshold.
    state = _state({"conv": {"kernel": (3, 3, 8, 8)}})
    with pytest.raises(ValueError, match="fsdp_min_size=262144"):
        sharding_rules.state_partition_specs(state, {"data": 2, "fsdp": 4}, min_size=2**18)


# --- config checks before anything compiles ---------------------------------------------------


def test_an_fsdp_size_no_parameter_divides_stops_the_cli_before_compiling(tmp_path,
                                                                          digits_data_dir):
    # seed_cnn has no parameter of 2**18 elements: fsdp=8 would split nothing.
    result = run_train(tmp_path, f"--config.data_dir={digits_data_dir}",
                       "--config.mesh.fsdp=8", "--config.eval_batch_size=400", devices=8,
                       check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: config.mesh.fsdp=8 shards no parameter")
    assert not (tmp_path / "checkpoints").exists()


def _config(**fields):
    config = default_config()
    config.dataset, config.image_size, config.num_classes = "builtin:digits", 28, 10
    config.batch_size = config.eval_batch_size = 64
    for path, value in fields.items():
        group, _, name = path.rpartition("__")
        (config[group] if group else config)[name] = value
    return config


@pytest.mark.parametrize("fields, message", [
    ({"sharding__strategy": "pmap"}, "config.sharding.strategy='pmap' is unknown"),
    ({"sharding__strategy": "shard_map", "mesh__data": 2, "mesh__fsdp": 4},
     "needs config.mesh.fsdp=1 (got 4)"),
    ({"sharding__strategy": "shard_map", "sharding__rules": (("kernel", ()),)},
     "config.sharding.rules apply to the 'jit' strategy only"),
    ({"sharding__fsdp_min_size": -1}, "config.sharding.fsdp_min_size=-1 must be >= 0"),
    ({"sharding__rules": (("kernel", ("tensor",)),)}, "unknown mesh axis 'tensor'"),
    ({"mesh__data": 3, "mesh__fsdp": 2}, "multiplies to 6 but there are 8 devices"),
    ({"mesh__data": -1, "mesh__fsdp": 3}, "8 devices do not divide by 3"),
])
def test_invalid_sharding_configs_fail_before_compiling(fields, message):
    with pytest.raises(validate.ConfigError) as info:
        validate.validate_config(_config(**fields), device_count=8, process_count=1)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_valid_sharding_configs_pass():
    validate.validate_config(_config(mesh__data=2, mesh__fsdp=4), device_count=8,
                             process_count=1)
    validate.validate_config(_config(sharding__strategy="shard_map"), device_count=8,
                             process_count=1)


def test_a_config_without_a_group_is_a_one_line_error(tmp_path):
    """No silent defaults for a missing group (workdirs written before config.sharding
    existed are no longer read)."""
    from vision_jax.training import loop

    old = _config().to_dict()
    del old["sharding"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = loop.load_workdir_config(str(tmp_path))
    with pytest.raises(validate.ConfigError, match=r"^config\.sharding is missing; build"):
        validate.validate_config(config, device_count=8, process_count=1)
