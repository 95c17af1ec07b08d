"""python -m vision_jax.train --config configs/shapes_multilabel.py --workdir runs/shapes_ml

Multi-label classification on the built-in procedural shapes (`builtin:shapes_multilabel`:
64x64 scenes of 1-4 circles, squares and triangles; 4,000 train / 1,000 test): which of the
three classes appear in a scene, one sigmoid output each, binary cross-entropy. A pooled
ResNet-18 (ImageNet stem, stride 32, global average pool) at a quarter of the paper's width
(`width` 16). Each label's threshold is chosen by best F1 on the eval split and saved as
`eval_thresholds.json` in the workdir, which `predict` reads.

Measured: (to be filled in)

Arguments: `configs/shapes_multilabel.py:smoke` (a few steps; the CI check).
"""

from configs import common
from vision_jax.training.defaults import default_config


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, "configs/shapes_multilabel.py")
    config = default_config()
    config.task = "multilabel"
    config.model_name = "resnet18"
    config.model.width = 16
    config.dataset = "builtin:shapes_multilabel"
    config.num_classes = 3  # labels: circle, square, triangle
    config.image_size = 64
    config.normalize.mean = (0.5, 0.5, 0.5)
    config.normalize.std = (0.25, 0.25, 0.25)
    config.augment.flip = True
    config.multilabel.choose_thresholds = True
    config.batch_size = 32
    config.eval_batch_size = 250
    config.num_epochs = 10.0
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 2e-3
    config.optimizer.weight_decay = 1e-4
    config.schedule.name = "warmup_cosine"
    config.schedule.warmup_epochs = 0.5
    config.log_every_steps = 25
    config.eval_every_steps = 250  # every 2 epochs (125 steps each)
    if arg == "smoke":
        common.apply_smoke(config, {"model.width": 8, "image_size": 32, "eval_batch_size": 100,
                                    "eval_split": "test[:200]"})
    return config
