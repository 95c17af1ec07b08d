"""python -m vision_jax.train --config configs/transfer_source.py --workdir runs/transfer_source

The source of the transfer experiment (docs/weights.md, `configs/transfer_target.py`): the
course's MNIST convnet (`seed_cnn`) trained on the digits 0-4 only (the `source` view of
`configs/transfer_data.py`: 2,000 train / 500 test images of the built-in digits), the
`mnist_cnn` recipe cut to 5 epochs.

Measured (2026-12-01, shared 2-core CPU at load average ~28, JAX 0.10.2): 99.2 % test
accuracy on the digits 0-4 after the 155 steps, 340 s for the whole command.
Arguments: `smoke` (a few steps on `builtin:digits`, a CI check).
"""

from configs import common, mnist_cnn, transfer_data


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, "configs/transfer_source.py")
    config = mnist_cnn.get_config(arg)
    if not arg:
        config.dataset = transfer_data.dataset("source")
        config.num_classes = len(transfer_data.SOURCE_CLASSES)
        config.num_epochs = 5.0
    return config
