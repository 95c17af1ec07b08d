"""Built-in offline datasets; importing a module registers it as `builtin:<name>`."""

from vision_jax.data.builtin import (  # noqa: F401
    digits,
    shapes_classification,
    shapes_detection,
    shapes_multilabel,
    shapes_segmentation,
)
