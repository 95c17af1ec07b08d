"""Built-in offline datasets; importing a module registers it as `builtin:<name>`."""

import vision_jax.data.builtin.shapes_multilabel  # noqa: F401
from vision_jax.data.builtin import digits, shapes_detection, shapes_segmentation  # noqa: F401
