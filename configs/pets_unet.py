"""python -m vision_jax.train --config configs/pets_unet.py:builtin --workdir runs/shapes_unet

Measured (`:builtin`, 2026-12-02, 2-core CPU, JAX 0.10.2, on-device augmentation and the
host cache): final test mIoU **0.930** (pixel accuracy 0.988; IoU background 0.994, circle
0.931, square 0.888, triangle 0.908) after 30 epochs (3,750 steps of 16); mIoU 0.465 / 0.860
/ 0.893 / 0.926 / 0.929 / 0.930 after epochs 5 / 10 / 15 / 20 / 25 / 30. 105 min wall for
the whole command on a machine shared with two other trainings (load 6-7). Before the
on-device augmentation (2026-11-21): mIoU 0.929, 54.5 min wall at load 5-7. On an idle
machine the train step alone runs at about 37 images/s
(`python -m benchmarks.train_throughput --config configs/pets_unet.py:builtin`).

U-Net semantic segmentation (`unet`, task `segmentation`).

Arguments:
  (none)   Oxford-IIIT Pet, 3 classes (pet, background, border), 128x128. Data, either
           - the original archives (images.tar.gz + annotations.tar.gz from
             https://www.robots.ox.ac.uk/~vgg/data/pets/) extracted into one folder, giving
             images/*.jpg, annotations/trimaps/*.png, annotations/trainval.txt and test.txt:
             --config.dataset=segmentation_folder:/path/to/oxford-iiit-pet (the default is
             segmentation_folder:oxford-iiit-pet, relative to --config.data_dir); splits
             train = trainval.txt (3,680 images), test = test.txt (3,669);
           - or the TFDS catalog's `tfds:oxford_iiit_pet` (same splits), prepared once as
             array_record with TensorFlow (`pip install -e '.[tfds-build]'`), which downloads
             the two archives (~0.8 GB):
               python -m vision_jax.data.prepare oxford_iiit_pet --data_dir DIR
             then --config.dataset=tfds:oxford_iiit_pet --config.data_dir=DIR. Its
             `segmentation_mask` holds the trimap values 1, 2, 3 -> classes 0, 1, 2 (the
             mask_mapping below); its `label` (37 breeds) is not used.
           Trimap value 3 is the fuzzy border; to ignore it instead of learning it, set
           --config.num_classes=2 and mask_mapping {1: 0, 2: 1, 3: 255}.
  builtin  the built-in procedural shapes (`builtin:shapes_segmentation`, 64x64, 4 classes:
           background, circle, square, triangle), sized for a 2-core CPU.
  smoke    a few steps of a tiny U-Net on the built-in shapes (seconds; a CI check).
"""

from configs import common
from vision_jax.training.defaults import default_config

PET_CLASSES = ("pet", "background", "border")
SHAPES_CLASSES = ("background", "circle", "square", "triangle")


def _common(config):
    config.task = "segmentation"
    config.model_name = "unet"
    config.model.upsample = "transpose"
    config.segmentation.ignore_label = 255
    config.optimizer.name = "adam"
    config.schedule.name = "warmup_cosine"
    config.augment.flip = True
    config.progress_bar = True
    return config


def _pets(config):
    config.dataset = "segmentation_folder:oxford-iiit-pet"
    config.num_classes = 3
    config.segmentation.class_names = PET_CLASSES
    config.segmentation.mask_mapping = {1: 0, 2: 1, 3: 2}  # trimap - 1
    config.image_size = 128
    config.image_channels = 3  # a few Pet images are grey or RGBA
    config.normalize.mean = common.IMAGENET_MEAN
    config.normalize.std = common.IMAGENET_STD
    config.augment.scale = (0.75, 1.25)
    config.augment.crop_padding = 8
    config.augment.color_jitter = 0.2
    config.model.depth = 4
    config.model.base_width = 32
    config.model.dropout_rate = 0.2
    config.batch_size = 32
    config.eval_batch_size = 64
    config.num_epochs = 40.0
    config.optimizer.learning_rate = 1e-3
    config.optimizer.weight_decay = 1e-4
    config.optimizer.name = "adamw"
    config.schedule.warmup_epochs = 1.0
    return config


def _shapes(config):
    config.dataset = "builtin:shapes_segmentation"
    config.num_classes = 4
    config.segmentation.class_names = SHAPES_CLASSES
    config.image_size = 64
    config.normalize.mean = (0.5,)
    config.normalize.std = (0.25,)
    config.model.depth = 3
    config.model.base_width = 16
    config.model.dropout_rate = 0.0
    # Objects are ~20% of the pixels: the Dice term keeps the three shape classes from
    # being drowned by the background early on (cross-entropy alone plateaus at "all
    # background" for the first epochs).
    config.segmentation.dice_weight = 1.0
    config.batch_size = 16
    config.eval_batch_size = 100
    config.num_epochs = 30.0
    config.optimizer.learning_rate = 2e-3
    config.schedule.warmup_epochs = 0.5
    config.log_every_steps = 25
    config.eval_every_steps = 625  # every 5 epochs
    return config


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, "configs/pets_unet.py", ("builtin", "smoke"))
    config = _common(default_config())
    if not arg:
        return _pets(config)
    if arg == "builtin":
        return _shapes(config)
    return common.apply_smoke(_shapes(config), {
        "model.depth": 2, "model.base_width": 4, "eval_split": "test[:64]",
        "eval_batch_size": 32})
