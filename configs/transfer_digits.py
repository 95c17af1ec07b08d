"""python -m vision_jax.train --config configs/transfer_digits.py --workdir runs/transfer_digits

The source of the transfer experiment (docs/weights.md, `configs/transfer_shapes.py`): the
course's MNIST convnet (`seed_cnn`) trained briefly on the built-in handwritten digits
(`builtin:digits`, 4,000 train / 1,000 test, 28x28 grayscale), the `mnist_cnn` recipe cut to
5 epochs. Its convolutions are size-agnostic, so `configs/transfer_shapes.py:finetune` loads
all of them into a 48x48 shapes classifier and re-initialises only the dense head.

Measured: see the table in docs/weights.md.
Arguments: `configs/transfer_digits.py:smoke` finishes in seconds (a CI check).
"""

from configs import common, mnist_cnn


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, "configs/transfer_digits.py")
    config = mnist_cnn.get_config(arg)
    if not arg:
        config.num_epochs = 5.0
    return config
