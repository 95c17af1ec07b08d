"""Detection config checks: one-line errors naming the field, before anything compiles."""

from __future__ import annotations

import pytest

from configs.shapes_yolo import get_config as shapes_yolo_config
from vision_jax.training.validate import ConfigError, validate_config


def _config(**changes):
    config = shapes_yolo_config("smoke")
    with config.unlocked():
        config.update_from_flattened_dict(changes)
    return config


def test_shapes_config_is_valid():
    validate_config(_config(), device_count=1, process_count=1)


@pytest.mark.parametrize("changes, message", [
    ({"detection.max_box": 4}, "config.detection.max_box is not a known field"),
    ({"detection.max_boxes": 0}, "config.detection.max_boxes=0 must be a positive integer"),
    ({"detection.iou_threshold": "high"}, "config.detection.iou_threshold='high' must be a"),
    ({"detection.box_loss": "l1"}, "config.detection.box_loss='l1' must be 'giou' or 'ciou'"),
    ({"model_name": "resnet18"}, "config.model_name='resnet18' has no detection head"),
    ({"model.variant": "v9"}, "config.model.variant='v9' is unknown"),
    ({"image_size": 80}, "config.image_size=80 must be a multiple of 32"),
])
def test_bad_fields_are_one_line_errors(changes, message):
    with pytest.raises(ConfigError) as error:
        validate_config(_config(**changes), device_count=1, process_count=1)
    assert message in str(error.value) and "\n" not in str(error.value)
