"""Built-in offline datasets; importing a module registers it as `builtin:<name>`."""

from vision_jax.data.builtin import digits  # noqa: F401
from vision_jax.data.builtin import shapes_detection  # noqa: F401
from vision_jax.data.builtin import shapes_segmentation  # noqa: F401
