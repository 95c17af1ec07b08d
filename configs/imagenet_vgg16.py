"""python -m vision_jax.train --config configs/imagenet_vgg16.py --workdir gs://BUCKET/vgg16

VGG-16 with batch norm on ImageNet-1k (`tfds:imagenet2012`): global batch 256,
SGD momentum 0.9, lr 0.01 (0.1 without batch norm diverges), step decay x0.1
at epochs 30 and 60 over 74 epochs (as in Simonyan & Zisserman's schedule),
weight decay 5e-4 on kernels, dropout 0.5 in the classifier, bfloat16 compute.
Measured: not run here (no TPU and no ImageNet on the development machine).
`:smoke` runs the same model on built-in data in seconds.
"""

from configs import common
from vision_jax.training.defaults import default_config


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, "configs/imagenet_vgg16.py")
    config = default_config()
    config.model_name = "vgg16_bn"
    config.model.dropout_rate = 0.5
    config.dataset = "tfds:imagenet2012"
    config.eval_split = "validation"
    config.num_classes = 1000
    config.image_size = 224
    config.image_channels = 3
    config.dtype = "bfloat16"
    config.normalize.mean = common.IMAGENET_MEAN
    config.normalize.std = common.IMAGENET_STD
    config.augment.flip = True
    config.augment.scale = (1.0, 1.6)
    config.batch_size = 256
    config.eval_batch_size = 512
    config.num_epochs = 74.0
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.learning_rate = 0.01
    config.optimizer.weight_decay = 5e-4
    config.schedule.name = "step"
    config.schedule.decay_epochs = (30.0, 60.0)
    config.schedule.decay_factor = 0.1
    config.log_every_steps = 100
    config.keep_checkpoints = 2
    if arg == "smoke":
        common.apply_smoke(config)
        config.image_size = 32
        config.dtype = "float32"
    return config
