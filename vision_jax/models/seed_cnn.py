"""The course's MNIST convnet (Chollet, *Deep Learning with Python*, 2nd ed., listing 8.1).

Conv(32, 3x3, ReLU) - MaxPool 2x2 - Conv(64, 3x3, ReLU) - MaxPool 2x2 - Conv(128, 3x3, ReLU)
- Flatten - Dense(num_classes). Padding is VALID as in Keras, so a 28x28x1 image goes
28 -> 26 -> 13 -> 11 -> 5 -> 3 and the dense layer sees 3*3*128 = 1152 features.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision_jax.models import layers, register

# Keras' defaults (glorot_uniform kernels, zero biases), so the model trains like the course's.
_keras_init = nn.initializers.glorot_uniform()


class SeedCNN(nn.Module):
    num_classes: int
    dtype: layers.Dtype = jnp.float32
    param_dtype: layers.Dtype = jnp.float32
    dropout_rate: float = 0.0
    conv_impl: str = "auto"
    pool_impl: str = "auto"

    # What `vision_jax.summary` feeds the model when no size is given.
    default_input_shape: ClassVar[tuple[int, int, int]] = (28, 28, 1)

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
        x = images.astype(self.dtype)
        for index, features in enumerate((32, 64, 128), start=1):
            if index > 1:
                x = layers.MaxPool((2, 2), impl=self.pool_impl, name=f"pool{index - 1}")(x)
            layers.check_spatial(x, 3, "seed_cnn", f"before conv{index}")
            x = layers.Conv(features, (3, 3), padding="VALID", dtype=self.dtype,
                            param_dtype=self.param_dtype, kernel_init=_keras_init,
                            impl=self.conv_impl, name=f"conv{index}")(x)
            x = nn.relu(x)
        # The last conv map, for class-activation maps; a no-op unless "intermediates" is mutable.
        self.sow("intermediates", "features", x)
        x = x.reshape(x.shape[0], -1)
        x = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                     kernel_init=_keras_init, name="classifier")(x)
        return layers.to_float32_logits(x)


register("seed_cnn", SeedCNN)
