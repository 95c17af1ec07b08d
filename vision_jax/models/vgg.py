"""VGG-11/13/16/19 (configurations A, B, D, E of Simonyan & Zisserman, 2015), with or without BN.

Every conv is 3x3, stride 1, padding 1, with a bias and a ReLU; "M" is a 2x2 stride-2 max-pool.
The ``_bn`` variants put a BatchNorm between each conv and its ReLU and keep the conv bias, as
the torchvision reference models do (so their parameter counts match those exactly).

Head (``head`` attribute):
  * ``"flatten"`` - the paper's: flatten the 7x7x512 map, FC-4096, FC-4096, FC-num_classes.
  * ``"gap"``     - global average pooling to 512 features, then the same FC stack. This is what
                    lets the model run on inputs whose final map is not 7x7 (e.g. 32x32 CIFAR).
  * ``"auto"``    - (default) ``"flatten"`` when the final map is 7x7 (224x224 inputs), else
                    ``"gap"``. Parameter counts therefore depend on the input size.
``hidden_units`` (4096 in the paper) sets the width of the two hidden FC layers; 512 is common on
CIFAR.

``adaptive_pool=True`` is torchvision's layout: an adaptive average pool to 7x7 before the
flattened classifier, whatever the input size (an identity at 224x224), so the ``head`` is always
``"flatten"``. ``bn_epsilon`` sets the ``_bn`` variants' batch-norm epsilon (PyTorch's 1e-5).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision_jax.models import layers, register

POOL = "M"
CONFIGS: dict[str, tuple[int | str, ...]] = {
    "A": (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "B": (64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "D": (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL,
          512, 512, 512, POOL),
    "E": (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL,
          512, 512, 512, 512, POOL),
}
HEADS = ("auto", "flatten", "gap")
# The paper's classifier was designed for this final feature map (224 / 2**5).
_PAPER_FINAL_MAP = 7
# torchvision's choice: N(0, 0.01) for the fully connected layers.
_dense_init = nn.initializers.normal(stddev=0.01)


class VGG(nn.Module):
    num_classes: int
    config: str = "D"
    batch_norm: bool = False
    head: str = "auto"
    hidden_units: int = 4096
    dtype: layers.Dtype = jnp.float32
    param_dtype: layers.Dtype = jnp.float32
    dropout_rate: float = 0.0
    conv_impl: str = "auto"
    pool_impl: str = "auto"
    adaptive_pool: bool = False
    bn_epsilon: float = layers.BATCH_NORM_EPSILON

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
        if self.config not in CONFIGS:
            raise ValueError(f"VGG: unknown config {self.config!r}; choose one of {list(CONFIGS)}")
        if self.head not in HEADS:
            raise ValueError(f"VGG: unknown head {self.head!r}; choose one of {HEADS}")
        x = images.astype(self.dtype)
        block, conv_in_block = 1, 1
        for entry in CONFIGS[self.config]:
            if entry == POOL:
                layers.check_spatial(x, 2, "vgg", f"before pool{block}")
                x = layers.MaxPool((2, 2), impl=self.pool_impl, name=f"pool{block}")(x)
                block, conv_in_block = block + 1, 1
                continue
            name = f"conv{block}_{conv_in_block}"
            x = layers.Conv(int(entry), (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                            param_dtype=self.param_dtype, impl=self.conv_impl, name=name)(x)
            if self.batch_norm:
                x = layers.batch_norm(train, self.dtype, self.param_dtype, name=f"{name}_bn",
                                      epsilon=self.bn_epsilon)(x)
            x = nn.relu(x)
            conv_in_block += 1
        # The last conv map (after its pool), for class-activation maps; a no-op unless
        # the "intermediates" collection is mutable.
        self.sow("intermediates", "features", x)
        x = self._pool_or_flatten(x)
        for index in (1, 2):
            x = nn.Dense(self.hidden_units, dtype=self.dtype, param_dtype=self.param_dtype,
                         kernel_init=_dense_init, name=f"fc{index}")(x)
            x = nn.relu(x)
            x = nn.Dropout(self.dropout_rate, deterministic=not train, name=f"dropout{index}")(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                     kernel_init=_dense_init, name="classifier")(x)
        return layers.to_float32_logits(x)

    def _pool_or_flatten(self, x: jax.Array) -> jax.Array:
        if self.adaptive_pool:
            x = layers.AdaptiveAvgPool((_PAPER_FINAL_MAP,) * 2, name="adaptive_pool")(x)
            return x.reshape(x.shape[0], -1)
        paper_sized = x.shape[1] == x.shape[2] == _PAPER_FINAL_MAP
        if self.head == "flatten" or (self.head == "auto" and paper_sized):
            return x.reshape(x.shape[0], -1)
        return layers.GlobalAvgPool(name="global_pool")(x)


for _depth, _config in (("11", "A"), ("13", "B"), ("16", "D"), ("19", "E")):
    register(f"vgg{_depth}", functools.partial(VGG, config=_config, batch_norm=False))
    register(f"vgg{_depth}_bn", functools.partial(VGG, config=_config, batch_norm=True))
