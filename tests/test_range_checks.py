"""Numbers out of range are one-line errors naming the field, raised while the config is
parsed (before any data is read or anything compiled): the issue's cases, each of which
used to train silently, and the edges of each range."""

from __future__ import annotations

import pytest

from configs import mnist_cnn
from vision_jax.errors import ConfigError
from vision_jax.training.run_config import parse_config


def _parse(**overrides):
    config = mnist_cnn.get_config("smoke")
    for dotted, value in overrides.items():
        *groups, field = dotted.split(".")
        node = config
        for group in groups:
            node = node[group]
        with config.ignore_type():
            node[field] = value
    return parse_config(config)


@pytest.mark.parametrize("field, value, expected", [
    ("num_steps", -5, "config.num_steps=-5 must be >= 0"),
    ("num_epochs", -1.0, "config.num_epochs=-1.0 must be >= 0"),
    ("optimizer.learning_rate", -0.1, "config.optimizer.learning_rate=-0.1 must be positive"),
    ("optimizer.momentum", -1.0, "config.optimizer.momentum=-1.0 must be in [0, 1)"),
    ("optimizer.momentum", 1.0, "config.optimizer.momentum=1.0 must be in [0, 1)"),
    ("optimizer.b2", 1.0, "config.optimizer.b2=1.0 must be in [0, 1)"),
    ("schedule.decay_factor", 0.0, "config.schedule.decay_factor=0.0 must be in (0, 1]"),
    ("schedule.end_factor", 2.0, "config.schedule.end_factor=2.0 must be in [0, 1]"),
    ("label_smoothing", 1.5, "config.label_smoothing=1.5 must be in [0.0, 1.0)"),
    ("model.dropout_rate", 1.5, "config.model.dropout_rate=1.5 must be in [0.0, 1.0)"),
    ("model.dropout_rate", 1.0, "config.model.dropout_rate=1.0 must be in [0.0, 1.0)"),
    ("model.dropout_rate", -0.1, "config.model.dropout_rate=-0.1 must be in [0.0, 1.0)"),
    ("seed", -1, "config.seed=-1 must be >= 0"),
    ("batch_size", 0, "config.batch_size=0 must be positive"),
    ("image_size", -28, "config.image_size=-28 must be positive"),
    ("mesh.data", 0, "config.mesh.data=0 must be -1 (all remaining devices) or >= 1"),
    ("augment.hue", 0.7, "config.augment.hue=0.7 must be in [0.0, 0.5]"),
])
def test_out_of_range_is_one_line_naming_the_field(field, value, expected):
    with pytest.raises(ConfigError) as error:
        _parse(**{field: value})
    assert str(error.value) == expected


def test_float16_is_refused_and_the_supported_dtypes_are_named():
    with pytest.raises(ConfigError) as error:
        _parse(dtype="float16")
    message = str(error.value)
    assert message.startswith("config.dtype='float16' is not supported; use one of float32, "
                              "bfloat16") and "loss scaling" in message


@pytest.mark.parametrize("field, value", [
    ("optimizer.momentum", 0.0), ("optimizer.momentum", 0.99), ("label_smoothing", 0.1),
    ("model.dropout_rate", 0.5), ("dtype", "bfloat16"), ("num_steps", 0), ("seed", 7),
    ("schedule.decay_factor", 1.0), ("mesh.data", -1),
])
def test_values_inside_the_ranges_parse(field, value):
    _parse(**{field: value})
