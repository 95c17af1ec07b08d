"""The config parsed once into typed sections: neutral defaults, fields a model or task does
not use, and the task registry."""

from __future__ import annotations

import dataclasses

import optax
import pytest

from configs import common
from configs.mnist_cnn import get_config as mnist_config
from configs.pets_unet import get_config as unet_config
from vision_jax.data.config import DataSection
from vision_jax.errors import ConfigError
from vision_jax.tasks import TASKS
from vision_jax.tasks.classification import ClassificationOptions
from vision_jax.tasks.segmentation import SegmentationOptions
from vision_jax.training import validate
from vision_jax.training.defaults import default_config
from vision_jax.training.run_config import parse_config


def _error(config) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(config)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("field", ["dataset", "image_size", "num_classes"])
def test_dataset_image_size_and_classes_are_required(field):
    config = default_config()
    values = {"dataset": "builtin:digits", "image_size": 28, "num_classes": 10}
    for name, value in values.items():
        if name != field:
            config[name] = value
    assert _error(config).startswith(f"config.{field} is required")


def test_sections_are_typed_and_keep_the_configdict_names():
    run = parse_config(mnist_config("smoke"))
    assert isinstance(run.data, DataSection) and run.data.image_size == 28
    assert run.data.normalize.mean == (0.1307,) and run.data.get("image_channels") == 0
    assert run.task_options == ClassificationOptions(label_smoothing=0.0)
    assert dict(run.model.options)["dropout_rate"] == 0.3
    assert run.optimizer.name == "adam" and run.loop.num_steps == 12
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.data.image_size = 32


def test_a_model_option_the_model_does_not_take_is_named():
    config = mnist_config("smoke")
    config.model.stem = "cifar"  # a resnet field; seed_cnn has none
    assert _error(config).startswith("config.model.stem is not a field of model 'seed_cnn'")
    config = mnist_config("smoke")
    config.model.dropout_rat = 0.1
    assert "did you mean config.model.dropout_rate?" in _error(config)


def test_another_tasks_options_are_an_error():
    config = mnist_config("smoke")
    config.detection.max_boxes = 4
    assert _error(config) == ("config.detection.max_boxes is set but config.task="
                              "'classification' does not use it (it belongs to task "
                              "'detection'); remove it")
    config = unet_config("smoke")
    config.label_smoothing = 0.1
    assert _error(config).startswith("config.label_smoothing=0.1 is set but config.task="
                                     "'segmentation' does not use it")


def test_segmentation_options_are_a_section():
    run = parse_config(unet_config("smoke"))
    assert isinstance(run.task_options, SegmentationOptions)
    assert run.task_options.dice_weight == 1.0
    config = unet_config("smoke")
    config.segmentation.ignore_label = 2
    assert _error(config).startswith("config.segmentation.ignore_label=2 must be an int")


def test_tasks_registry_lists_and_suggests():
    assert TASKS.names() == ["classification", "detection", "multilabel", "segmentation",
                             "verification"]
    config = mnist_config("smoke")
    config.task = "clasification"
    assert "did you mean 'classification'?" in _error(config)


def test_kernel_options_that_cannot_run_are_named_not_the_image_size():
    """The structured check: the same model with "auto" kernels fits, so the kernel is wrong."""
    from vision_jax.data.sources import DatasetInfo

    config = mnist_config("smoke")
    config.model.pool_impl = "pallas"
    config.model.conv_impl = "no_such_kernel"
    info = DatasetInfo("x", None, None, None, {"train": 1}, num_channels=1)
    with pytest.raises(ConfigError, match=r"^config\.model\.conv_impl='no_such_kernel', "
                                          r"config\.model\.pool_impl='pallas' cannot run"):
        run = parse_config(config)
        validate.check_model_fits(run, validate.build_model(run), optax.identity(), info)


def test_configs_share_one_argument_parser():
    with pytest.raises(ValueError, match=r"configs/mnist_cnn\.py: unknown argument 'smok'; "
                                         r"use 'smoke' or none"):
        mnist_config("smok")
    assert unet_config("smoke").num_steps == common.SMOKE["num_steps"]
