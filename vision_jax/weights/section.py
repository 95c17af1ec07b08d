"""The transfer-learning part of a config, typed: where a fresh run's weights come from
(``config.init_from``), what never trains (``config.freeze``) and the two-phase recipe
(``config.transfer``).

They form one `TransferSection` on `RunConfig` (built by `transfer_section`), read by the
optimiser (which parameters get which learning rate), by the model wrapper that keeps
frozen batch norms on their stored statistics, and by `vision_jax.weights.init_from` at the
start of a fresh run. Every path regex is matched with ``re.search`` against '/'-joined
parameter paths such as ``stage1_block1/conv1/kernel`` (``init_from.skip``: against variable
paths with their collection, ``params/classifier/kernel``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import ml_collections

from vision_jax.sections import build, in_range, non_negative, one_of, option

FORMATS = ("auto", "torch", "keras", "checkpoint")
TORCH_SUFFIXES = (".pth", ".pt", ".safetensors")
KERAS_SUFFIXES = (".h5", ".keras")


def _regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as e:
        return f"is not a valid regular expression ({e})"
    return None


@dataclasses.dataclass(frozen=True)
class InitFromSection:
    """``config.init_from``: the weights a fresh run starts from (a resumed run continues
    from its own checkpoint)."""

    path: str = option("", "a torchvision .pth/.pt/.safetensors file, a Keras .h5/.keras "
                           "file, or a vision_jax workdir; '' = train from scratch")
    format: str = option("auto", "torch | keras | checkpoint (a workdir's latest checkpoint) "
                                 "| auto (from the path)", check=one_of(*FORMATS))
    skip: str = option("", "regex of variable paths (params/classifier/kernel) left at their "
                           "initial values", check=_regex)

    @property
    def source_format(self) -> str:
        """`format`, or for ``auto`` the one the path names (a directory: a workdir)."""
        if self.format != "auto":
            return self.format
        if self.path.endswith(TORCH_SUFFIXES):
            return "torch"
        if self.path.endswith(KERAS_SUFFIXES):
            return "keras"
        return "checkpoint"


@dataclasses.dataclass(frozen=True)
class PhasesSection:
    """``config.transfer``: the two-phase recipe (head only, then everything slower)."""

    head: str = option(r"^classifier/", "regex of the head's parameter paths", check=_regex)
    head_epochs: float = option(0.0, "> 0: for this many epochs only the head trains; then "
                                     "everything, at finetune_lr_scale x the learning rate",
                                check=non_negative)
    finetune_lr_scale: float = option(0.1, "phase 2's factor on the learning rate",
                                      check=in_range(0, 1, low_open=True))


@dataclasses.dataclass(frozen=True)
class FreezeSection:
    freeze: str = option("", "regex of parameter paths that never change; their batch norms "
                             "use their stored statistics", check=_regex)


@dataclasses.dataclass(frozen=True)
class TransferSection:
    """``config.init_from``, ``config.freeze`` and ``config.transfer`` together."""

    init_from: InitFromSection = InitFromSection()
    freeze: str = ""
    phases: PhasesSection = PhasesSection()

    @property
    def two_phase(self) -> bool:
        return self.phases.head_epochs > 0

    def is_frozen(self, path: str) -> bool:
        """The parameter at ``path`` never changes."""
        return bool(self.freeze) and re.search(self.freeze, path) is not None

    def is_base(self, path: str) -> bool:
        """The parameter at ``path`` waits for phase 2 (two-phase recipe, not the head)."""
        return self.two_phase and re.search(self.phases.head, path) is None

    def partitions_params(self) -> bool:
        """Whether the optimiser treats some parameters differently from others."""
        return bool(self.freeze) or self.two_phase


def transfer_section(config: ml_collections.ConfigDict) -> TransferSection:
    """The section from ``config.init_from``, ``config.freeze`` and ``config.transfer``;
    each error names its field."""
    freeze = build(FreezeSection, {"freeze": config.get("freeze") or ""}, "config").freeze
    return TransferSection(
        init_from=build(InitFromSection, config.get("init_from"), "config.init_from"),
        freeze=freeze,
        phases=build(PhasesSection, config.get("transfer"), "config.transfer"))


def parameter_paths(params: Any) -> list[str]:
    """'/'-joined paths of a (possibly abstract) parameter tree, in tree order."""
    from flax import traverse_util

    return list(traverse_util.flatten_dict(dict(params), sep="/"))
