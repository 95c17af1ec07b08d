"""Rerunning a workdir with a changed config: length and cadence changes continue the run;
any other change is one error line naming the fields (before anything is compiled or
written), unless `allow_config_change`, which records the change in the workdir."""

from __future__ import annotations

import json

import pytest
from train_cli import run_train

from vision_jax.errors import ConfigError
from vision_jax.training.config_guard import CHANGES_FILE, changed_fields, check_workdir
from vision_jax.training.defaults import default_config


def _config(**changes):
    config = default_config()
    config.dataset, config.image_size, config.num_classes = "builtin:digits", 28, 10
    for key, value in changes.items():
        node, *path = key.split("__")
        target = config
        for part in [node, *path][:-1]:
            target = target[part]
        target[[node, *path][-1]] = value
    return config


def _workdir_with(tmp_path, config):
    (tmp_path / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))
    return str(tmp_path)


def test_changed_fields_are_leaves_and_missing_fields_read_as_defaults():
    old = {"a": 1, "opt": {"lr": 0.1, "b1": 0.9}}
    new = {"a": 1, "opt": {"lr": 0.2, "b1": 0.9}, "added": False}
    assert changed_fields(old, new, {"added": False}) == {"opt.lr": (0.1, 0.2)}
    assert changed_fields(old, new) == {"added": (None, False), "opt.lr": (0.1, 0.2)}


@pytest.mark.parametrize("change", [
    {"num_steps": 500}, {"num_epochs": 30.0}, {"log_every_steps": 7},
    {"eval_every_steps": 9}, {"checkpoint_every_steps": 11}, {"progress_bar": False},
    {"mesh__fsdp": 2}, {"keep_checkpoints": 1},
])
def test_length_cadence_and_placement_changes_continue(tmp_path, change):
    workdir = _workdir_with(tmp_path, _config())
    check_workdir(_config(**change), workdir, resuming=True)
    assert not (tmp_path / CHANGES_FILE).exists()


@pytest.mark.parametrize("change, named", [
    ({"batch_size": 32}, "batch_size 128 -> 32"),
    ({"optimizer__learning_rate": 0.01}, "optimizer.learning_rate 0.001 -> 0.01"),
    ({"model_name": "vgg11"}, "model_name 'seed_cnn' -> 'vgg11'"),
    ({"schedule__decay_epochs": (3.0,)}, "schedule.decay_epochs [] -> [3.0]"),
])
def test_other_changes_are_one_line_naming_the_field(tmp_path, change, named):
    workdir = _workdir_with(tmp_path, _config())
    with pytest.raises(ConfigError) as error:
        check_workdir(_config(**change), workdir, resuming=True)
    message = str(error.value)
    assert "\n" not in message and named in message
    assert "new --workdir" in message and "--config.allow_config_change=True" in message


def test_many_changes_are_counted_not_all_spelled_out(tmp_path):
    workdir = _workdir_with(tmp_path, _config())
    changes = {"batch_size": 32, "seed": 3, "image_size": 32, "dtype": "bfloat16",
               "label_smoothing": 0.1, "optimizer__b1": 0.8}
    with pytest.raises(ConfigError, match="and 2 more"):
        check_workdir(_config(**changes), workdir, resuming=True)


def test_a_workdir_without_a_checkpoint_takes_any_config(tmp_path):
    workdir = _workdir_with(tmp_path, _config())
    check_workdir(_config(batch_size=32), workdir, resuming=False)


def test_an_allowed_change_is_recorded(tmp_path):
    workdir = _workdir_with(tmp_path, _config())
    new = _config(batch_size=32, allow_config_change=True, num_steps=5)
    check_workdir(new, workdir, resuming=True)
    check_workdir(new, workdir, resuming=True, record=False)  # another process: no write
    lines = (tmp_path / CHANGES_FILE).read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["changes"] == {"batch_size": [128, 32]}


def test_the_readme_override_on_a_finished_run_stops_before_compiling(tmp_path,
                                                                      digits_data_dir):
    """The issue's case: the README's override example on an existing workdir used to resume
    the finished run under a new batch size and learning rate, overwriting config.json."""
    workdir = tmp_path / "w"
    data = f"--config.data_dir={digits_data_dir}"
    run_train(workdir, data, "--config.num_steps=4", "--config.eval_every_steps=4")
    written = (workdir / "config.json").read_text()
    result = run_train(workdir, data, "--config.num_steps=4", "--config.eval_every_steps=4",
                       "--config.batch_size=16", "--config.optimizer.learning_rate=1e-2",
                       env_extra={"JAX_LOG_COMPILES": "1"}, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "batch_size 32 -> 16" in errors[0], result.stderr[-3000:]
    assert "optimizer.learning_rate" in errors[0]
    assert "Compiling" not in result.stderr
    assert (workdir / "config.json").read_text() == written


@pytest.mark.slow  # four trainings; the refusal above and the check_workdir tests run in CI
def test_a_finished_run_continues_under_new_cadences_or_an_allowed_change(tmp_path,
                                                                         digits_data_dir):
    workdir = tmp_path / "w"
    data = f"--config.data_dir={digits_data_dir}"
    run_train(workdir, data, "--config.num_steps=4", "--config.eval_every_steps=4")
    # A longer run with other cadences continues the same run ...
    result = run_train(workdir, data, "--config.num_steps=6", "--config.eval_every_steps=3")
    assert "resuming from the checkpoint at step 4" in result.stdout
    # ... and an explicit permission continues under the new config, and says so.
    run_train(workdir, data, "--config.num_steps=8", "--config.batch_size=16",
              "--config.allow_config_change=True")
    record = json.loads((workdir / CHANGES_FILE).read_text().splitlines()[-1])
    assert record["changes"] == {"batch_size": [32, 16]}
    assert json.loads((workdir / "config.json").read_text())["batch_size"] == 16
