"""python -m vision_jax.train --config configs/shapes_classification.py --workdir runs/shapes

Single-object classification on the built-in procedural shapes
(`builtin:shapes_classification`: 48x48 scenes of one circle, square or triangle over a
textured background, the object's box kept as metadata; 3,000 train / 500 test). It is the
dataset on which `python -m vision_jax.explain gradcam` is checked to localise the object.

Arguments (comma-separated): `seed_cnn` (default, 6 epochs); `resnet18` (4 epochs; CIFAR
stem, no max-pool, so the last stage is 6x6; `width` 8, an eighth of the paper's);
`resnet18_imagenet` (8 epochs; ImageNet stem, width 32, zero-initialised last BN scales);
`smoke` (a few steps, a CI check).
Measured (2026-12-01, dataset 2.0.0, shared 2-core CPU, JAX 0.10.2; `python -m
benchmarks.explain localise --workdir W [--layer L]`, docs/explain.md; Grad-CAM peak of the
predicted class in the object's box, 500 test images):
- `seed_cnn`: 90.2 % test accuracy after its 6 epochs (558 steps, 22 min at load ~25); peak
  in the box 83.0 % at the default `conv3`, 92.6 % at `conv1`.
- `resnet18`: 50.6 % after its 4 epochs (372 steps, 37 min at load ~25), still learning;
  peak in the box 43.0 % at `stage4_block2` (cells on a centred grid, 3.5 pixels
  off their fields' centres; not re-measured).
- `resnet18_imagenet`: 86.4 % after its 8 epochs (744 steps, 16 min wall at load ~11); its
  stages are 12, 6, 3 and 2 cells, and Grad-CAM localises at none: 60.0 % at
  `stage2_block2` (6x6), 38.6 % at `stage3_block2`.
The issue's 90 % in the box is reached only by `seed_cnn` at `conv1`.
(Dataset 1.0.0, 8 epochs of `seed_cnn`: 40.8 % accuracy.)
"""

from vision_jax.training.defaults import default_config

_MODELS = ("seed_cnn", "resnet18", "resnet18_imagenet")


def get_config(arg: str | None = None):
    parts = [part for part in (arg or "").split(",") if part]
    unknown = [part for part in parts if part not in (*_MODELS, "smoke")]
    if unknown:
        raise ValueError(f"configs/shapes_classification.py: unknown argument {unknown[0]!r}; "
                         f"use one of {', '.join(_MODELS)} and/or 'smoke'")
    config = default_config()
    variant = next((part for part in parts if part in _MODELS), "seed_cnn")
    config.model_name = "seed_cnn" if variant == "seed_cnn" else "resnet18"
    if variant == "resnet18":
        config.model.stem = "cifar"
        config.model.width = 8
    elif variant == "resnet18_imagenet":
        # 7x7/2 stem and max-pool: stages at 12, 6, 3 and 2 cells, so width 32 costs what
        # the CIFAR stem's width 8 does, and learns this task far faster (see above).
        config.model.stem = "imagenet"
        config.model.width = 32
        config.model.zero_init_last_bn = True
    config.dataset = "builtin:shapes_classification"
    config.num_classes = 3
    config.image_size = 48
    config.image_channels = 3
    config.normalize.mean = (0.5, 0.5, 0.5)
    config.normalize.std = (0.25, 0.25, 0.25)
    config.augment.flip = True
    config.batch_size = 32
    config.eval_batch_size = 250
    config.num_epochs = {"seed_cnn": 6.0, "resnet18": 4.0, "resnet18_imagenet": 8.0}[variant]
    config.checkpoint_every_steps = 93  # an epoch, so an interrupted run can still be read
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.schedule.name = "warmup_cosine"
    config.schedule.warmup_epochs = 0.5
    config.log_every_steps = 50
    if "smoke" in parts:
        config.num_steps = 6
        config.batch_size = 16
        config.eval_batch_size = 250
        config.log_every_steps = 2
        config.eval_every_steps = 3
        config.checkpoint_every_steps = 3
    return config
