"""python -m vision_jax.train --config configs/transfer_target.py:finetune --workdir runs/ft

The target of the transfer experiment (docs/weights.md): the digits 5-9 with only 50
training images per class (the `target` view of `configs/transfer_data.py`), tested on the
built-in digits' 500 test images of those classes. The source is `configs/transfer_source.py`
(the same `seed_cnn` after 5 epochs of the digits 0-4: other classes, never these ones).
Both heads have 5 outputs, so `init_from.skip` re-initialises the head on purpose (the source's
head answers "which of 0-4").

Arguments (comma-separated), one recipe and optionally `smoke` (a few steps, a CI check):
  scratch    random initialisation (the baseline);
  finetune   everything but the head from the source run (`init_from`), all trainable;
  two_phase  the Keras recipe as one run: 5 epochs of head only (`transfer.head_epochs`),
             then everything at 0.3x the learning rate (`transfer.finetune_lr_scale`);
  linear     the convolutions frozen (`config.freeze`), only the head trains.
Every recipe: Adam at a constant 1e-3 (so the first N steps of a longer run are exactly an
N-step run), 300 steps of 25 images (30 epochs), evaluated every 25 steps.

Measured (2026-12-01, JAX 0.10.2, shared 2-core CPU at load average ~28, one run each, test
accuracy on the 500 test digits 5-9; wall = the whole command; table in docs/weights.md):

  recipe      25 steps  100 steps  300 steps  wall (300 steps)
  scratch       81.4 %     90.6 %     95.8 %  ~370 s (600 steps: 470 s)
  finetune      87.2 %     92.4 %     95.4 %   302 s (+ 340 s for the source run)
  two_phase     78.6 %     89.2 %     93.0 %   383 s
  linear        78.6 %     87.0 %     92.2 %   135 s

Wall times of the same computation vary by a third with the machine's load (two_phase vs
finetune). The source's features give a head start (+5.8 points after 25 steps) but at 50 images per
class the convnet learns the digits 5-9 from scratch as well within 300 steps; at equal wall
time counting the source run (642 s), scratch reaches ~1,150 steps and 95.4-96.8 % (evals
at steps 1,100-1,200; the 600-step run resumed to 1,600 steps: 96.8 %).
"""

from configs import mnist_cnn, transfer_data

RECIPES = ("scratch", "finetune", "two_phase", "linear")
SOURCE_WORKDIR = "runs/transfer_source"  # where configs/transfer_source.py was trained


def get_config(arg: str | None = None):
    parts = [part for part in (arg or "").split(",") if part]
    recipes = [part for part in parts if part in RECIPES]
    if any(part not in (*RECIPES, "smoke") for part in parts) or len(recipes) > 1:
        raise ValueError(f"configs/transfer_target.py: bad argument {arg!r}; use one of "
                         f"{', '.join(RECIPES)}, optionally with ',smoke'")
    recipe = recipes[0] if recipes else "scratch"
    smoke = "smoke" in parts
    config = mnist_cnn.get_config("smoke" if smoke else None)
    if not smoke:
        config.dataset = transfer_data.dataset("target")
        config.num_classes = len(transfer_data.TARGET_CLASSES)
        config.batch_size = 25
        config.num_steps = 300
        config.eval_every_steps = 25
        config.log_every_steps = 25
        config.checkpoint_every_steps = 100
    config.schedule.name = "constant"
    config.schedule.warmup_epochs = 0.0
    config.optimizer.learning_rate = 1e-3
    if recipe != "scratch":
        config.init_from.path = SOURCE_WORKDIR
        config.init_from.skip = "^params/classifier/"
    if recipe == "two_phase":
        config.transfer.head_epochs = 0.02 if smoke else 5.0  # smoke: 2 of its 12 steps
        config.transfer.finetune_lr_scale = 0.3
    if recipe == "linear":
        config.freeze = "^conv"
    return config
