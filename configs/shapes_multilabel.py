"""python -m vision_jax.train --config configs/shapes_multilabel.py --workdir runs/shapes_ml

Multi-label classification on the built-in procedural shapes (`builtin:shapes_multilabel`
2.0.0: 64x64 scenes of 1-4 circles, squares and triangles over softened textures; 4,000
train / 1,000 test): which of the three classes appear in a scene, one sigmoid output each,
binary cross-entropy. A pooled ResNet-18 (ImageNet stem, stride 32, global average pool) at
a quarter of the paper's width (`width` 16), both flips (they never change the label set).
Each label's threshold is chosen by best F1 on the eval split and saved as
`eval_thresholds.json` in the workdir, which `predict` reads.

Measured (2026-12-01, dataset 2.0.0, the shared 2-core CPU at load average 4-7, `nice -n 5`,
JAX 0.10.2): the acceptance target (test mAP >= 0.95) is NOT reached; every recipe learns a
little and then memorises (train loss falls, test loss does not).
- This recipe (adam 1e-3, warmup-cosine, 30 epochs = 3,750 steps of 32): 15.1 min wall for
  the command, 132 train images/s over the whole run (compilation and six evaluations
  included; ~150 in steady state). Test mAP 0.685 / 0.690 / 0.683 / 0.703 / 0.699 / 0.700
  after epochs 5 / 10 / 15 / 20 / 25 / 30; final AP circle 0.728, square 0.648, triangle
  0.725; F1 at the chosen thresholds (0.025, 0.010, 0.022: every label predicted nearly
  everywhere) 0.769 / 0.729 / 0.732; subset accuracy 0.138, Hamming loss 0.402. Train loss
  0.66 -> 0.33 (train subset accuracy 0.65), test loss 0.66 -> 0.90: memorised.
- `seed_cnn` (adam 1e-3, 10 epochs = 1,250 steps): 7.9 min wall, ~120 images/s; test mAP
  0.669 / 0.691 / 0.693 / 0.694 / 0.693 every 2 epochs; AP 0.723 / 0.672 / 0.683, F1 at the
  chosen thresholds 0.768 / 0.740 / 0.732; train loss 0.67 -> 0.54.
- ResNet-18 with the CIFAR stem (adamw 1e-3): ~19 images/s, so stopped at step 300 of 750
  (11 min); test mAP 0.692 at step 250.
Dataset 1.0.0 gave test mAP 0.618 (chance, the positive rate, about 0.6) with this network:
its textures' edges and corners hid the shapes (see `shapes_multilabel`'s docstring).
Next to try: more procedural training scenes (4,000 is what the fits memorise), shapes kept
wholly in the frame (a cut shape can lose what tells its class), a global max-pool head
(presence anywhere), and many more epochs than a shared CPU gives in 20 minutes.

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
    config.augment.vertical_flip = True
    config.multilabel.choose_thresholds = True
    config.batch_size = 32
    config.eval_batch_size = 250
    config.num_epochs = 30.0
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.schedule.name = "warmup_cosine"
    config.schedule.warmup_epochs = 0.5
    config.log_every_steps = 25
    config.eval_every_steps = 625  # every 5 epochs (125 steps each)
    config.checkpoint_every_steps = 625
    if arg == "smoke":
        common.apply_smoke(config, {"model.width": 8, "image_size": 32, "eval_batch_size": 100,
                                    "eval_split": "test[:200]"})
    return config
