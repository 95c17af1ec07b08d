"""Verification: metric learning for one-shot recognition.

The model's output is an embedding (any backbone whose head has `embedding_size` outputs);
the task L2-normalises it, trains it with the triplet loss (semi-hard mining over the whole
global batch), the contrastive loss or the supervised contrastive loss, and evaluates it on
identities never seen in training: pair verification (ROC AUC, accuracy at a threshold
chosen on a validation part of the pairs) and one-shot identification (one reference image
per identity, nearest neighbour).

Batches carry "image", "label" (the identity, int) and, in evaluation, "mask": the
classification batches, so any classification source whose labels are identities serves
(digits with held-out classes through `by_class:builtin:digits`, `tfds:lfw` with people as
identities).

Config (`config.verification`, `VerificationOptions`): loss, margin, temperature,
validation_fraction, pair_seed. The embedding size is `config.num_classes` (the size of
the backbone's head).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

# Imported for its side effect: registers the `by_class:` dataset scheme the verification
# configs use to hold identities out of training.
from vision_jax.data import by_class  # noqa: F401
from vision_jax.data.pipeline import CLASSIFICATION, ExampleSpec
from vision_jax.errors import ConfigError
from vision_jax.losses.metric_learning import LOSSES, gather_batch
from vision_jax.metrics import verification as vm
from vision_jax.parallel.mesh import BATCH_AXES
from vision_jax.sections import in_range, non_negative, one_of, option, positive
from vision_jax.tasks import TASKS
from vision_jax.tasks.base import SumAccumulator, TaskEntry

DEFAULT_MARGINS = {"triplet": 0.2, "contrastive": 1.0}
DEFAULT_TEMPERATURE = 0.1  # the supervised contrastive loss's (Khosla et al. 2020)


def bound_batch_axes() -> tuple[str, ...]:
    """The mesh's batch axes bound where this is traced: inside the `shard_map` strategy's
    per-device step, where each device holds a slice of the batch; () under plain `jit`."""
    bound = []
    for axis in BATCH_AXES:
        try:
            jax.lax.axis_size(axis)
        except NameError:
            continue
        bound.append(axis)
    return tuple(bound)


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows of `x` scaled to unit length (the embedding head's last step)."""
    x = jnp.asarray(x, jnp.float32)
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), eps))


class VerificationAccumulator:
    """Loss sums on device, every real example's embedding and identity on the host."""

    def __init__(self):
        self.sums = SumAccumulator()
        self.embeddings = vm.EmbeddingCollector()

    def add(self, outputs: dict) -> None:
        self.sums.add(outputs["sums"])
        self.embeddings.add(outputs["embeddings"], outputs["labels"], outputs["mask"])

    def result(self) -> dict:
        return self.sums.result()


class VerificationTask:
    """Loss and held-out-identity evaluation of an L2-normalised embedding."""

    def __init__(self, loss: str = "triplet", margin: float | None = None,
                 temperature: float | None = None,
                 validation_fraction: float = 0.5, seed: int = 0,
                 gather_axes: tuple[str, ...] | None = None):
        """`gather_axes`: the mesh axes to gather the global batch over when the steps run
        per device (`shard_map` strategy); None finds them where the loss is traced
        (`bound_batch_axes`). Under plain `jit` the batch the loss sees is already the
        global one."""
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is not one of {sorted(LOSSES)}")
        self.loss_name = loss
        self.margin = DEFAULT_MARGINS.get(loss) if margin is None else float(margin)
        self.temperature = (DEFAULT_TEMPERATURE if temperature is None else float(temperature))
        # The one number the loss takes besides the batch.
        self._hyperparameter = self.temperature if loss == "supcon" else self.margin
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.gather_axes = tuple(gather_axes) if gather_axes else None

    # -- inside jit --------------------------------------------------------------------------

    def _global_loss(self, outputs, labels, mask=None):
        """The loss of the global batch. Per device, every device computes this same value;
        the transpose of the gather sums their gradients, which the strategy's `pmean` of
        parameter gradients turns back into exactly the gradient of the global loss."""
        if mask is None:
            mask = jnp.ones(labels.shape[:1], jnp.float32)
        axes = self.gather_axes if self.gather_axes is not None else bound_batch_axes()
        if axes:
            outputs, labels, mask = gather_batch((outputs, labels, mask), axes)
        return LOSSES[self.loss_name](l2_normalize(outputs), labels, self._hyperparameter,
                                     mask)

    def loss(self, outputs: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        """The loss of the whole global batch; the sums weight it by this device's example
        count, so that summed over devices and steps their mean is the mean loss."""
        value = self._global_loss(outputs, batch["label"])
        count = jnp.asarray(batch["label"].shape[0], jnp.float32)
        return value, {"loss": value * count, "count": count}

    def eval_outputs(self, outputs: jax.Array, batch: dict) -> dict:
        mask = batch["mask"]
        count = jnp.sum(mask.astype(jnp.float32))
        value = self._global_loss(outputs, batch["label"], mask)
        return {"sums": {"loss": value * count, "count": count},
                "embeddings": l2_normalize(outputs), "labels": batch["label"], "mask": mask}

    # -- on the host -------------------------------------------------------------------------

    @staticmethod
    def example_spec() -> ExampleSpec:
        return CLASSIFICATION

    @staticmethod
    def new_accumulator() -> VerificationAccumulator:
        return VerificationAccumulator()

    def summarize(self, sums) -> dict[str, float]:
        """Train sums -> loss. An eval accumulator adds pair_auc, pair_accuracy (at
        pair_threshold, chosen on the validation pairs: pair_validation_accuracy) and
        one_shot_accuracy, with the pair, reference and query counts."""
        if isinstance(sums, VerificationAccumulator):
            totals = sums.result()
            out = {"loss": float(totals["loss"]) / max(float(totals["count"]), 1.0)}
            return {**out, **vm.verification_metrics(*sums.embeddings.arrays(),
                                                     self.validation_fraction, self.seed)}
        return {"loss": float(sums["loss"]) / max(float(sums["count"]), 1.0)}

    def write_report(self, accumulator: VerificationAccumulator, out_dir: str,
                     prefix: str = "eval") -> dict:
        """`<prefix>_verification_report.{json,txt}`: the metrics, the identities evaluated
        and how the threshold was chosen."""
        embeddings, identities = accumulator.embeddings.arrays()
        report = {"metrics": self.summarize(accumulator),
                  "identities": sorted(int(i) for i in np.unique(identities)),
                  "examples": int(len(identities)), "loss": self.loss_name,
                  **({"temperature": self.temperature} if self.loss_name == "supcon"
                     else {"margin": self.margin}),
                  "threshold_rule": f"best accuracy on the first {self.validation_fraction:g} "
                                    "of the shuffled balanced pairs, applied to the rest"}
        with epath.Path(out_dir, f"{prefix}_verification_report.json").open("w") as f:
            json.dump(report, f, indent=1)
        lines = [f"{key:>26}  {value:.4f}" if isinstance(value, float) else f"{key:>26}  {value}"
                 for key, value in report["metrics"].items()]
        lines += [f"{'identities':>26}  {report['identities']}",
                  f"{'threshold rule':>26}  {report['threshold_rule']}"]
        with epath.Path(out_dir, f"{prefix}_verification_report.txt").open("w") as f:
            f.write("\n".join(lines) + "\n")
        return report

    def write_examples(self, batch: dict, outputs: np.ndarray, out_dir: str,
                       prefix: str = "eval") -> None:
        """Nothing beyond the report for now."""

    def write_predictions(self, images: np.ndarray, outputs: np.ndarray, names: list[str],
                          out_dir: str) -> list[dict]:
        """`embeddings.npz` (names, unit embeddings) and, in `predictions.json`, each image's
        most similar other image with the cosine similarity."""
        embeddings = np.asarray(l2_normalize(jnp.asarray(outputs)))
        with epath.Path(out_dir, "embeddings.npz").open("wb") as f:
            np.savez(f, names=np.asarray(names), embeddings=embeddings)
        similarity = embeddings @ embeddings.T
        np.fill_diagonal(similarity, -np.inf)
        results = []
        for i, name in enumerate(names):
            entry: dict = {"image": name}
            if len(names) > 1:
                j = int(np.argmax(similarity[i]))
                entry.update(nearest=names[j], similarity=float(similarity[i, j]))
            results.append(entry)
        with epath.Path(out_dir, "predictions.json").open("w") as f:
            json.dump(results, f, indent=1)
        return results


@dataclasses.dataclass(frozen=True)
class VerificationOptions:
    """``config.verification`` (the embedding size is `config.num_classes`)."""

    loss: str = option("triplet", "triplet (semi-hard mining over the global batch), "
                                  "contrastive or supcon (supervised contrastive)",
                       check=one_of(*LOSSES))
    margin: float = option(0.0, "the triplet or contrastive loss's margin; 0 = its default "
                                "(triplet 0.2, contrastive 1.0)", check=non_negative)
    temperature: float = option(DEFAULT_TEMPERATURE, "the supcon loss's softmax temperature",
                                check=positive)
    validation_fraction: float = option(0.5, "share of the eval pairs that choose the "
                                             "verification threshold",
                                        check=in_range(0.0, 1.0, low_open=True,
                                                       high_open=True))
    pair_seed: int = option(0, "seeds the choice of negative eval pairs and their split")


def _check(options: VerificationOptions, *, num_classes: int, augment,
           model: Any = None) -> None:
    if num_classes < 2:
        raise ConfigError(f"config.num_classes={num_classes} is the embedding size of the "
                          "verification task; set it to 2 or more (e.g. 64)")
    # Each loss takes one hyperparameter; a value set for the other would be ignored.
    if options.loss == "supcon" and options.margin:
        raise ConfigError(f"config.verification.margin={options.margin} has no effect with "
                          "loss='supcon', which takes config.verification.temperature; set "
                          "margin to 0")
    if options.loss != "supcon" and options.temperature != DEFAULT_TEMPERATURE:
        raise ConfigError(f"config.verification.temperature={options.temperature} has no "
                          f"effect with loss={options.loss!r}, which takes "
                          "config.verification.margin; leave temperature at "
                          f"{DEFAULT_TEMPERATURE} or set loss='supcon'")


def _create(options: VerificationOptions, *, num_classes: int, info, data,
            model: Any = None) -> VerificationTask:
    return VerificationTask(options.loss, options.margin or None, options.temperature,
                            options.validation_fraction, options.pair_seed)


TASKS.register("verification", TaskEntry(create=_create, options=VerificationOptions,
                                         group="verification", check=_check))
