"""python -m vision_jax.train --config configs/transfer_shapes.py:finetune --workdir runs/ft \
    --config.init_from.path=runs/transfer_digits

The target of the transfer experiment (docs/weights.md): the built-in shapes
(`builtin:shapes_classification`, circle / square / triangle over textured backgrounds) with
only its first 150 training images (49 / 43 / 58 per class), in grayscale at 48x48, tested
on all 500 test images. The source is `configs/transfer_digits.py` (the course's convnet
after 5 epochs of handwritten digits): a different task, different images, the same
`seed_cnn`, whose convolutions load as they are while the dense head (10 digit classes on a
28x28 input) is re-initialised for 3 classes on 48x48.

Arguments (comma-separated), one recipe and optionally `smoke` (a few steps, a CI check):
  scratch    random initialisation (the baseline);
  finetune   every layer from the digits run (`init_from`), all trainable at the same rate;
  two_phase  the Keras recipe as one run: 10 epochs of head only (`transfer.head_epochs`),
             then everything at 0.3x the learning rate (`transfer.finetune_lr_scale`);
  linear     the convolutions frozen (`config.freeze`), only the head trains.
Every recipe: Adam at a constant 1e-3 (so the first N steps of a longer run are exactly an
N-step run), 300 steps of 25 images (50 epochs), evaluated every 25 steps.

Measured: see the table in docs/weights.md.
"""

from configs import common
from vision_jax.training.defaults import default_config

RECIPES = ("scratch", "finetune", "two_phase", "linear")
SOURCE_WORKDIR = "runs/transfer_digits"  # where configs/transfer_digits.py was trained


def get_config(arg: str | None = None):
    parts = [part for part in (arg or "").split(",") if part]
    unknown = [part for part in parts if part not in (*RECIPES, "smoke")]
    if unknown or len([p for p in parts if p in RECIPES]) > 1:
        raise ValueError(f"configs/transfer_shapes.py: bad argument {arg!r}; use one of "
                         f"{', '.join(RECIPES)}, optionally with ',smoke'")
    recipe = next((part for part in parts if part in RECIPES), "scratch")
    config = default_config()
    config.model_name = "seed_cnn"
    config.model.dropout_rate = 0.3
    config.dataset = "builtin:shapes_classification"
    config.train_split = "train[:150]"
    config.num_classes = 3
    config.image_size = 48
    config.image_channels = 1
    config.normalize.mean = (0.5,)
    config.normalize.std = (0.25,)
    config.augment.flip = True
    config.augment.crop_padding = 4
    config.batch_size = 25
    config.eval_batch_size = 250
    config.num_steps = 300
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.schedule.name = "constant"
    config.log_every_steps = 25
    config.eval_every_steps = 25
    config.checkpoint_every_steps = 100
    if recipe != "scratch":
        config.init_from.path = SOURCE_WORKDIR
    if recipe == "two_phase":
        config.transfer.head_epochs = 10.0
        config.transfer.finetune_lr_scale = 0.3
    if recipe == "linear":
        config.freeze = r"^conv"
    if "smoke" in parts:
        common.apply_smoke(config, {"schedule.warmup_steps": 0})
        if recipe == "two_phase":
            config.transfer.head_epochs = 0.5  # 3 steps of head only, then 3 of everything
    return config
