"""Built-in offline datasets; importing a module registers it as `builtin:<name>`."""

from vision_jax.data.builtin import digits  # noqa: F401
