"""python -m vision_jax.train --config configs/digits_verification.py --workdir runs/digits_ver

One-shot verification on held-out identities: an embedding of the built-in digits
(`builtin:digits`, 28x28 MNIST, 400 train / 100 test images per digit) trained on digits 0-6
only (`train@0-6`: 2,800 images) and evaluated on digits 7, 8 and 9, which training never
sees (`test@7-9`: 300 images), through the `by_class:` dataset scheme. The split is the
issue's own example and is kept: digits 7-9 are the last three ids, so no choice of held-out
digits was made by looking at results. The embedding is the 64-d head of `seed_cnn`
(`num_classes` is the embedding size), L2-normalised; triplet loss with semi-hard mining over
the whole global batch, margin 0.5; shifts of +/-3 px, rotations of +/-15 degrees, zooms of
0.9-1.1. Evaluation: pair verification (ROC AUC over 20,000 balanced pairs of held-out
digits; accuracy at the threshold chosen on half the pairs, applied to the other half) and
one-shot identification (one reference image per held-out digit, nearest neighbour).

Margin, augmentation and length were chosen on validation identities, never on 7-9: trained
on digits 0-3 and evaluated on digits 4-6, both of the train split (held-out AUC after 400
steps: 0.819 for the previous recipe, 0.857 with the augmentation, 0.865 with margin 0.5;
contrastive 0.826; the AUC is flat after about 100 steps). See
docs/multilabel_and_verification.md.

Measured (2026-12-01, the shared 2-core CPU at load average 12-14, JAX 0.10.2; 210 steps of
128, 10 epochs; 2 min 42 s of wall time with compilation and both evaluations): the
acceptance target (pair ROC AUC >= 0.95 on the held-out digits) is NOT reached. Held-out
digits 7-9, final (10 epochs): pair AUC 0.791, pair accuracy 0.716 at the cosine threshold
0.386 (0.721 on the validation half), one-shot identification 0.838 (3 references, 297
queries). After 5 epochs: AUC 0.825, accuracy 0.747, one-shot 0.879. The previous recipe
(margin 0.2, no augmentation, 20 epochs) ended at AUC 0.765, one-shot 0.815. Seven training
identities are few: the loss still separates them within a few epochs, and what the
embedding learns of them carries over to unseen digits only in part (raw pixels: AUC 0.675).

Arguments: `configs/digits_verification.py:smoke` (a few steps; the CI check).
"""

from configs import common
from vision_jax.training.defaults import default_config

TRAIN_CLASSES = "0-6"  # identities the embedding is trained on
EVAL_CLASSES = "7-9"  # held-out identities: never seen in training


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, "configs/digits_verification.py")
    config = default_config()
    config.task = "verification"
    config.model_name = "seed_cnn"
    config.num_classes = 64  # the embedding size
    config.dataset = "by_class:builtin:digits"
    config.train_split = f"train@{TRAIN_CLASSES}"
    config.eval_split = f"test@{EVAL_CLASSES}"
    config.image_size = 28
    config.normalize.mean = (0.13,)
    config.normalize.std = (0.31,)
    config.verification.loss = "triplet"
    # A wider margin keeps more triplets active longer (at 0.2 the loss is ~0 within 10 epochs).
    config.verification.margin = 0.5
    # Small shifts, rotations and zooms: the unseen digits differ from the seen ones in
    # stroke shape, and invariance to pose is what carries over to them.
    config.augment.crop_padding = 3
    config.augment.rotate_degrees = 15.0
    config.augment.scale = (0.9, 1.1)
    config.batch_size = 128
    config.eval_batch_size = 100
    # Short: on the validation classes the held-out AUC peaks early, then the embedding
    # over-fits the training identities.
    config.num_epochs = 10.0
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.schedule.name = "warmup_cosine"
    config.schedule.warmup_epochs = 0.5
    config.log_every_steps = 20
    config.eval_every_steps = 105  # every 5 epochs (21 steps each)
    if arg == "smoke":
        # The held-out split stays (apply_smoke replaces only datasets not built in).
        common.apply_smoke(config, {"batch_size": 32, "eval_batch_size": 100,
                                    "dataset": config.dataset, "num_classes": 64,
                                    "train_split": config.train_split,
                                    "eval_split": config.eval_split})
    return config
