"""python -m vision_jax.train --config configs/digits_verification.py --workdir runs/digits_ver

One-shot verification on held-out identities: an embedding of the built-in digits
(`builtin:digits`, 28x28 MNIST, 400 train / 100 test images per digit) trained on digits 0-6
only (`train@0-6`: 2,800 images) and evaluated on digits 7, 8 and 9, which training never
sees (`test@7-9`: 300 images), through the `by_class:` dataset scheme. The split is the
issue's own example and is kept: digits 7-9 are the last three ids, so no choice of held-out
digits was made by looking at results. Each training digit's four quarter turns and their
mirror images count as identities of their own, and so do half composites, the top half of
one training digit over the bottom half of another (`vision_jax.data.transformed_identities`,
`vision_jax.data.composite_identities`): seven identities teach the embedding to tell seven
shapes apart and little else. One copy is left out (`~6r180`): a 6 turned by 180 degrees
is a 9, and 9 is held out (`train@0-6/rot90flip+halves~6r180`: 55 + 42 identities, 33,200
images). The embedding is the 64-d head of `seed_cnn` (`num_classes` is the embedding size),
L2-normalised; triplet loss with semi-hard mining over the whole global batch, margin 0.5;
shifts of +/-3 px, rotations of +/-15 degrees, zooms of 0.9-1.1; 2.5 epochs (648 steps of
128). Evaluation: pair verification (ROC AUC over 20,000 balanced pairs of held-out digits;
accuracy at the threshold chosen on half the pairs, applied to the other half) and one-shot
identification (one reference image per held-out digit, nearest neighbour).

Everything was chosen on validation identities, never on 7-9: trained on digits 0-3 and
evaluated on digits 4-6 (A), and trained on 3-6 and evaluated on 0-2 (B), all of the train
split. Held-out AUC A / B: 0.941 / 0.923 with rotations and mirror images (500 steps),
0.956 / 0.944 with the half composites too (375 steps). See
docs/multilabel_and_verification.md.

Measured (2026-12-02, idle 2-core CPU, JAX 0.10.2; 52 s of wall time with compilation and
both evaluations): the acceptance target (pair ROC AUC >= 0.95 on the held-out digits) is
NOT reached. Held-out digits 7-9, final (step 648): pair AUC 0.891, pair accuracy 0.813 at
the cosine threshold 0.426, one-shot identification 0.842 (3 references, 297 queries); with
`--config.seed=1` 0.907, 0.824, 0.939; seeds 0-4 end at 0.891, 0.907, 0.853, 0.882, 0.887
(mean 0.884; 0.867 with the turned 6 trained on). Digits 7-9 are the hardest three to tell
apart (7 vs 9: 0.87): raw pixels give AUC 0.675 on them, 0.710 on the validation digits 4-6
and 0.833 on 0-2. The same recipe holding out other digits (trained on the other seven,
evaluated on their test images) reaches 0.978 / 0.980 on 0-2 and 0.958 / 0.969 on 4-6
(seeds 0 / 1; with `~9r180`, as a turned 9 is a 6).

Arguments: `configs/digits_verification.py:smoke` (a few steps; the CI check).
"""

from configs import common
from vision_jax.training.defaults import default_config

TRAIN_CLASSES = "0-6"  # identities the embedding is trained on
EVAL_CLASSES = "7-9"  # held-out identities: never seen in training
# 8 transforms and half composites: 33,200 training images of 55 + 42 identities. The 6
# turned by 180 degrees is left out (`~6r180`): it is a 9, and 9 is held out.
IDENTITY_TRANSFORMS = "rot90flip+halves~6r180"


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, "configs/digits_verification.py")
    config = default_config()
    config.task = "verification"
    config.model_name = "seed_cnn"
    config.num_classes = 64  # the embedding size
    config.dataset = "by_class:builtin:digits"
    # Each quarter turn and mirror image of a training digit is an identity of its own: 55
    # identities instead of 7 (`vision_jax.data.transformed_identities`).
    config.train_split = f"train@{TRAIN_CLASSES}/{IDENTITY_TRANSFORMS}"
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
    # 648 steps: on the validation classes the held-out AUC is flat from 300 to 1,000 steps.
    config.num_epochs = 2.5
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.schedule.name = "warmup_cosine"
    config.schedule.warmup_epochs = 0.5
    config.log_every_steps = 20
    config.eval_every_steps = 328  # halfway and at the end
    if arg == "smoke":
        # The held-out split stays (apply_smoke replaces only datasets not built in).
        common.apply_smoke(config, {"batch_size": 32, "eval_batch_size": 100,
                                    "dataset": config.dataset, "num_classes": 64,
                                    "train_split": config.train_split,
                                    "eval_split": config.eval_split})
    return config
