"""Frozen batch norms normalise with their stored statistics, as Keras's ``trainable=False``.

Freezing a batch norm's scale and offset in the optimiser is not enough: in training mode
it would still normalise with the batch's statistics and overwrite its running averages,
so a frozen base would drift and a small target batch would replace the statistics learnt
on the source. Keras runs a non-trainable ``BatchNormalization`` in inference mode.

Why a method interceptor around ``model.apply`` (`with_frozen_batch_norms`) rather than a
model option: every model family builds its norms through `models.layers.batch_norm` with
one ``train`` flag, and the frozen set is a regex over parameter *paths*, which a module
knows only once bound. The interceptor sees each bound ``nn.BatchNorm`` with its path,
so it works for every model unchanged, leaves the parameter tree as it is (checkpoints and
imports keep their paths), and the train step stays the same function. A norm in inference
mode neither reads the batch's statistics nor writes its running averages, so its
``batch_stats`` come out of a step bit-for-bit unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn

# A predicate on '/'-joined parameter paths (``stage1_block1/bn1/scale``).
IsFrozen = Callable[[str], bool]


def inference_mode_norms(is_frozen: IsFrozen):
    """A Flax method interceptor: an ``nn.BatchNorm`` whose parameters are all frozen runs
    with ``use_running_average=True`` whatever the model's ``train`` flag."""

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if not isinstance(module, nn.BatchNorm) or context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        prefix = "/".join(module.path)
        names = [name for name, used in (("scale", module.use_scale), ("bias", module.use_bias))
                 if used]
        previous = module.use_running_average
        if previous or not names or not all(
                is_frozen(f"{prefix}/{name}") for name in names):
            return next_fun(*args, **kwargs)
        # The module's own field (set from `train` by the model) is the only way in: passing
        # use_running_average to __call__ as well is an error in Flax. The instance is the
        # bound clone of this one apply, and the field is put back right after.
        object.__setattr__(module, "use_running_average", True)
        try:
            return next_fun(*args, **kwargs)
        finally:
            object.__setattr__(module, "use_running_average", previous)

    return interceptor


class FrozenNormsModel:
    """``model`` whose `apply` runs under `inference_mode_norms`; everything else (init,
    clone, fields) is the model's own, and so is the variable tree."""

    def __init__(self, model: nn.Module, is_frozen: IsFrozen):
        self.model = model
        self.is_frozen = is_frozen

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        with nn.intercept_methods(inference_mode_norms(self.is_frozen)):
            return self.model.apply(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def with_frozen_batch_norms(model: nn.Module, transfer: Any) -> Any:
    """`model`, or with a ``config.freeze`` or the two-phase recipe a `FrozenNormsModel`
    whose frozen norms (and, for the two-phase recipe, those of the base, as the Keras
    fine-tuning guide keeps them) use their stored statistics."""
    if not transfer.partitions_params():
        return model
    return FrozenNormsModel(
        model, lambda path: transfer.is_frozen(path) or transfer.is_base(path))
