"""python -m vision_jax.train --config configs/coco_yolo.py --workdir gs://BUCKET/runs/coco_yolo

COCO 2017 detection (`tfds:coco/2017`, 80 classes; train 118k, validation 5k images) with the
anchor-free `fcos` detector (FCOS-style head, centre sampling, GIoU loss, sigmoid focal loss,
centerness) on ResNet-50, 512x512 inputs, bfloat16 compute: a TPU recipe
(e.g. a v4-32 or v5e-32 slice; launch with `python -m launch.tpu_vm ...`).
Measured: not run here (this project's machines have no TPU and no COCO copy); the schedule
follows FCOS's "1x" length (about 12 epochs at batch 16, scaled linearly to batch 256 with
warm-up). Expect mAP@[.5:.95] well below FCOS's published 38.7 without ImageNet-pretrained
weights (the backbone starts from scratch here).

Data: prepare once with TensorFlow (`pip install -e '.[tfds-build]' && python -m
vision_jax.data.prepare coco/2017 --data_dir $DATA`), then pass `--config.data_dir=$DATA`; where
TensorFlow is not installed, also name the version, `--config.dataset=tfds:coco/2017:1.1.0` (TFDS
then reads the prepared files' own feature spec, while the catalog's coco code needs TF). A COCO
folder in the official layout works too: `--config.dataset=coco:/data/coco
--config.train_split=train2017 --config.eval_split=val2017` (crowd boxes are skipped).

Arguments: `configs/coco_yolo.py:smoke` swaps in the built-in shapes data and a tiny model so
the recipe's code path runs in seconds on a CPU.
"""

from vision_jax.training.defaults import default_config


def get_config(arg: str | None = None):
    config = default_config()
    config.task = "detection"
    config.model_name = "fcos"
    config.model.backbone = "resnet50"
    config.model.backbone_width = 64
    config.model.fpn_width = 256
    config.model.head_convs = 4
    config.dtype = "bfloat16"
    config.dataset = "tfds:coco/2017"
    config.train_split = "train"
    config.eval_split = "validation"
    config.num_classes = 80
    config.image_size = 512
    config.normalize.mean = (0.485, 0.456, 0.406)
    config.normalize.std = (0.229, 0.224, 0.225)
    config.augment.flip = True
    config.augment.scale = (0.75, 1.25)
    config.detection.max_boxes = 100
    config.detection.max_detections = 100
    config.detection.score_threshold = 0.05
    config.detection.iou_threshold = 0.6
    config.detection.pre_nms_top_k = 1000
    # Regression ranges for 512 px inputs (FCOS uses 64/128 at ~800 px, with two more levels).
    config.model.scale_ranges = ((0.0, 64.0), (64.0, 128.0), (128.0, 1e8))
    config.batch_size = 256
    config.eval_batch_size = 256
    config.num_data_workers = 8
    config.num_epochs = 24.0
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.learning_rate = 0.16  # 0.01 x 256 / 16 (linear scaling)
    config.optimizer.weight_decay = 1e-4
    config.optimizer.grad_clip_norm = 10.0
    config.schedule.name = "warmup_cosine"
    config.schedule.warmup_epochs = 1.0
    config.log_every_steps = 100
    config.eval_every_steps = 0
    if arg == "smoke":
        config.dataset = "builtin:shapes_detection"
        config.train_split = "train"
        config.eval_split = "test[:16]"
        config.num_classes = 3
        config.dtype = "float32"
        config.image_size = 64
        config.model.backbone = "resnet18"
        config.model.backbone_width = 8
        config.model.fpn_width = 16
        config.model.head_convs = 1
        config.detection.max_boxes = 8
        config.batch_size = 8
        config.eval_batch_size = 8
        config.num_data_workers = 0
        config.num_steps = 2
        config.log_every_steps = 1
        config.eval_every_steps = 2
        config.checkpoint_every_steps = 2
    elif arg:
        raise ValueError(f"configs/coco_yolo.py: unknown argument {arg!r}; use 'smoke' or none")
    return config
