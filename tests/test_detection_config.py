"""Detection config checks: one-line errors naming the field, before anything compiles."""

from __future__ import annotations

import pytest

from configs.shapes_yolo import get_config as shapes_yolo_config
from configs.shapes_yolo_v1 import get_config as shapes_yolo_v1_config
from vision_jax.training.validate import ConfigError, validate_config


def _config(base=shapes_yolo_config, **changes):
    config = base("smoke")
    with config.unlocked():
        config.update_from_flattened_dict(changes)
    return config


@pytest.mark.parametrize("base", [shapes_yolo_config, shapes_yolo_v1_config])
def test_shapes_configs_are_valid(base):
    validate_config(_config(base), device_count=1, process_count=1)
    validate_config(base(), device_count=1, process_count=1)


@pytest.mark.parametrize("changes, message", [
    ({"detection.max_box": 4}, "config.detection.max_box is not a known field"),
    ({"detection.max_boxes": 0}, "config.detection.max_boxes=0 must be a positive integer"),
    ({"detection.iou_threshold": "high"},
     "config.detection.iou_threshold='high' has type str; it must be float"),
    ({"detection.iou_threshold": 1.5}, "config.detection.iou_threshold=1.5 must be in [0.0, 1.0]"),
    # A detector's own options live in config.model, and only the detector that reads them
    # takes them.
    ({"detection.box_loss": "giou"}, "config.detection.box_loss is a detector option now; set "
                                     "config.model.box_loss"),
    ({"model.box_loss": "l1"}, "config.model.box_loss='l1' must be one of 'giou', 'ciou'"),
    ({"model.grid_size": 7}, "config.model.grid_size is not a known field"),
    ({"model.center_radiu": 1.0}, "did you mean config.model.center_radius?"),
    ({"model.dropout_rate": 0.5}, "config.model.dropout_rate=0.5 must be 0: fcos has no dropout"),
    ({"model_name": "resnet18"}, "config.model_name='resnet18' has no detection head"),
    ({"image_size": 80}, "config.image_size=80 must be a multiple of 32 for fcos"),
])
def test_bad_fields_are_one_line_errors(changes, message):
    with pytest.raises(ConfigError) as error:
        validate_config(_config(**changes), device_count=1, process_count=1)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("changes, message", [
    ({"model.center_radius": 1.0}, "config.model.center_radius is not a known field"),
    ({"detection.lambda_coord": 5.0}, "config.detection.lambda_coord is a detector option now"),
    ({"model.head": "dense"}, "config.model.head='dense' must be one of 'fc', 'conv'"),
    ({"model.grid_size": 7}, "config.model.grid_size=7 with head='conv' needs image_size / "
                             "grid_size in (8, 16, 32); for image_size 96 use grid_size in "
                             "(12, 6, 3)"),
    ({"model.hidden_units": 256}, "config.model.hidden_units is unused with "
                                  "config.model.head='conv'"),
    ({"model.dropout_rate": 0.5}, "config.model.dropout_rate is unused with "
                                  "config.model.head='conv'"),
    ({"model.head": "fc", "model.grid_size": 7},
     "config.model.head_width is unused with config.model.head='fc'"),
])
def test_yolo_v1_option_errors_name_the_field(changes, message):
    with pytest.raises(ConfigError) as error:
        validate_config(_config(shapes_yolo_v1_config, **changes), device_count=1,
                        process_count=1)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_paper_head_takes_any_grid_size():
    config = _config(shapes_yolo_v1_config, **{"model.head": "fc", "model.grid_size": 7,
                                               "model.hidden_units": 64})
    with config.unlocked():
        del config.model["head_width"], config.model["head_convs"]
    validate_config(config, device_count=1, process_count=1)
