"""Every config field the trainer knows, with its default.

Configs in `configs/` start from `default_config()` and override what they
need; `--config.<field>=value` on the command line can only set fields that
exist here (ml_collections rejects unknown fields and wrong types). The defaults
are neutral: `dataset`, `image_size` and `num_classes` are unset placeholders that
every config must set (`vision_jax.training.run_config.parse_config` says so in one
line). Each group becomes a typed section when the run is built (see run_config.py).
"""

from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder

from vision_jax.data.config import default_data_config


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()

    # --- what to train -------------------------------------------------
    c.task = "classification"  # vision_jax.tasks registry name
    c.model_name = "seed_cnn"  # vision_jax.models registry name
    # Keyword arguments for vision_jax.models.create, checked against the model's own fields
    # (a key the chosen model does not take is an error, unless left at this default).
    c.model = ml_collections.ConfigDict(
        {"dropout_rate": 0.0, "conv_impl": "auto", "pool_impl": "auto"}
    )
    c.num_classes = placeholder(int)  # required
    c.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)
    c.label_smoothing = 0.0  # classification only
    # Task-specific fields, each group the options section of its task (vision_jax/tasks/);
    # setting the group of a task other than config.task is an error.
    c.segmentation = ml_collections.ConfigDict()
    c.detection = ml_collections.ConfigDict()
    c.multilabel = ml_collections.ConfigDict()
    c.verification = ml_collections.ConfigDict()

    # --- data: every field and its meaning in vision_jax/data/config.py ---------
    data = default_data_config()
    for key in data.keys():
        c[key] = data[key]
    c.dataset = placeholder(str)  # required
    c.image_size = placeholder(int)  # required

    # --- how long ----------------------------------------------------------
    c.num_epochs = 10.0  # used when num_steps == 0
    c.num_steps = 0  # > 0: train exactly this many steps

    # --- optimiser ------------------------------------------------------------
    c.optimizer = ml_collections.ConfigDict(
        {
            "name": "adam",  # sgd | adam | adamw | rmsprop
            "learning_rate": 1e-3,  # peak learning rate
            "momentum": 0.9,  # sgd momentum (0 = plain SGD); rmsprop momentum
            "nesterov": False,
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
            "rmsprop_decay": 0.9,
            "weight_decay": 0.0,  # decoupled for adamw, L2 added to the gradient otherwise
            "weight_decay_on": "kernels",  # kernels (no biases, no norm params) | all
            "grad_clip_norm": 0.0,  # 0 = no clipping
            "grad_accum_steps": 1,  # > 1: average gradients over this many batches
        }
    )
    c.schedule = ml_collections.ConfigDict(
        {
            "name": "constant",  # constant | warmup_cosine | step | plateau
            "warmup_epochs": 0.0,
            "warmup_steps": 0,  # > 0 wins over warmup_epochs
            "end_factor": 0.0,  # warmup_cosine: final lr = end_factor * peak
            "decay_epochs": (),  # step: multiply by decay_factor at these epochs
            "decay_factor": 0.1,
            "plateau_patience": 5,  # plateau: epochs without improvement of train loss
            "plateau_factor": 0.1,
            "plateau_cooldown": 0,
        }
    )

    # --- transfer learning (vision_jax/weights/section.py, docs/weights.md) ----------------
    # A fresh run starts from these weights (a resumed run from its own checkpoint):
    # path: a torchvision .pth/.pt/.safetensors, a Keras .h5/.keras, or a workdir ('' = none);
    # format: auto | torch | keras | checkpoint; skip: regex of variable paths kept initial.
    c.init_from = ml_collections.ConfigDict({"path": "", "format": "auto", "skip": ""})
    c.freeze = ""  # regex of parameter paths that never change (their batch norms: inference)
    # Two-phase recipe: head_epochs > 0 trains only `head` first, then everything at
    # finetune_lr_scale x the learning rate (the base's batch norms stay in inference mode).
    c.transfer = ml_collections.ConfigDict(
        {"head": "^classifier/", "head_epochs": 0.0, "finetune_lr_scale": 0.1})

    # --- parallelism -------------------------------------------------------------
    # Device mesh axes; -1 = all remaining devices. The batch is split over data*fsdp.
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1})
    # How the step is parallelised (docs/sharding.md):
    # strategy: "jit" = GSPMD on global arrays; parameters and optimiser state sharded over
    #   the `fsdp` axis by the rules below. "shard_map" = per-device step as in pmap code
    #   (pmean of gradients and batch-norm statistics); parameters replicated, mesh.fsdp=1.
    # fsdp_min_size: parameters with fewer elements stay replicated. 2**18 (1 MiB in
    #   float32): smaller ones save little memory per device for a collective's latency
    #   each step, while the large kernels holding most of a model's memory are sharded.
    # rules: ((regex, spec), ...) overriding the default for parameters whose '/'-joined
    #   path matches (first match wins); spec has one entry per dimension: a mesh axis
    #   ("data" or "fsdp"), a tuple of axes, or None; e.g. (("classifier/kernel", ("fsdp",
    #   None)), ("_bn/", ())) splits the classifier by rows and keeps batch norms whole.
    c.sharding = ml_collections.ConfigDict(
        {"strategy": "jit", "fsdp_min_size": 2**18, "rules": ()})

    # --- bookkeeping ---------------------------------------------------------------
    c.log_every_steps = 50
    c.eval_every_steps = 0  # 0 = once per epoch
    c.checkpoint_every_steps = 0  # 0 = once per epoch
    c.keep_checkpoints = 3
    c.progress_bar = True
    # Rerunning a workdir with a changed config (other than its length and cadences) is an
    # error unless this is True; the change is then logged in config_changes.jsonl.
    c.allow_config_change = False
    return c
