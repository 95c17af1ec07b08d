"""Single-label classification: softmax cross-entropy, accuracy, top-5,
and at the end a per-class report and a confusion matrix."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath

from vision_jax.data.pipeline import CLASSIFICATION, ExampleSpec
from vision_jax.errors import ConfigError
from vision_jax.metrics.classification import (
    classification_report,
    confusion_matrix_update,
    format_report,
)
from vision_jax.sections import in_range, option
from vision_jax.tasks import TASKS
from vision_jax.tasks.base import SumAccumulator, TaskEntry

# Classes `write_predictions` lists per image (every class when a model has fewer).
PREDICTED_TOP_K = 5


class ClassificationTask:
    """Loss, metric sums and end-of-run reports for single-label classification.

    Steps return *sums* (not means) so that batches, devices, processes and a
    resumed run all add up to exactly the same totals.
    """

    draws_examples = False  # the report and the confusion matrix say it all

    def __init__(self, num_classes: int, class_names: list[str], label_smoothing: float = 0.0):
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.label_smoothing = label_smoothing
        self.top_k = 5 if num_classes >= 5 else 0

    def _targets(self, labels):
        onehot = jax.nn.one_hot(labels, self.num_classes)
        if self.label_smoothing:
            onehot = optax.smooth_labels(onehot, self.label_smoothing)
        return onehot

    def loss(self, logits: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        logits = logits.astype(jnp.float32)
        labels = batch["label"]
        per_example = optax.softmax_cross_entropy(logits, self._targets(labels))
        sums = {
            "loss": jnp.sum(per_example),
            "accuracy": jnp.sum(jnp.argmax(logits, -1) == labels),
            "count": jnp.asarray(labels.shape[0], jnp.float32),
        }
        return jnp.mean(per_example), sums

    @staticmethod
    def example_spec() -> ExampleSpec:
        return CLASSIFICATION

    @staticmethod
    def new_accumulator() -> SumAccumulator:
        return SumAccumulator()

    def eval_outputs(self, logits: jax.Array, batch: dict) -> dict:
        logits = logits.astype(jnp.float32)
        labels, mask = batch["label"], batch["mask"]
        # Unsmoothed loss: eval/loss is the plain cross-entropy of the data.
        per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        preds = jnp.argmax(logits, -1)
        sums = {
            "loss": jnp.sum(per_example * mask),
            "accuracy": jnp.sum((preds == labels) * mask),
            "count": jnp.sum(mask),
            "confusion": confusion_matrix_update(
                jnp.zeros((self.num_classes, self.num_classes), jnp.int32),
                labels, preds, self.num_classes, mask=mask),
        }
        if self.top_k:
            top = jax.lax.top_k(logits, self.top_k)[1]
            sums["top5_accuracy"] = jnp.sum(jnp.any(top == labels[:, None], -1) * mask)
        return sums

    @staticmethod
    def summarize(sums) -> dict[str, float]:
        """Means from sums: {'loss': ..., 'accuracy': ..., 'top5_accuracy': ...}."""
        if isinstance(sums, SumAccumulator):
            sums = sums.result()
        count = max(float(sums["count"]), 1.0)
        return {k: float(v) / count for k, v in sums.items()
                if k not in ("count", "confusion")}

    def write_report(self, accumulator: SumAccumulator, out_dir: str,
                     prefix: str = "eval") -> dict:
        """Writes the classification report (text + JSON) and the confusion-matrix PNG."""
        from vision_jax.viz.confusion import plot_confusion_matrix

        conf = np.asarray(accumulator.result()["confusion"])
        report = classification_report(conf, self.class_names)
        text = format_report(report)
        with epath.Path(out_dir, f"{prefix}_classification_report.txt").open("w") as f:
            f.write(text + "\n")
        with epath.Path(out_dir, f"{prefix}_classification_report.json").open("w") as f:
            json.dump(report, f, indent=1)
        with epath.Path(out_dir, f"{prefix}_confusion_matrix.csv").open("w") as f:
            np.savetxt(f, conf, fmt="%d", delimiter=",")
        plot_confusion_matrix(conf, self.class_names,
                              os.path.join(out_dir, f"{prefix}_confusion_matrix.png"))
        return report

    def write_examples(self, batch: dict, logits: np.ndarray, out_dir: str,
                       prefix: str = "eval") -> None:
        """Nothing beyond the report and the confusion matrix (`draws_examples` is False)."""

    def write_predictions(self, images: np.ndarray, logits: np.ndarray, names: list[str],
                          out_dir: str) -> list[dict]:
        """The top 5 classes (all, when fewer) with probabilities per image, as
        `predictions.json`."""
        probs = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), -1))
        results = []
        for name, p in zip(names, probs, strict=True):
            top = np.argsort(-p)[:min(PREDICTED_TOP_K, self.num_classes)]
            results.append({"image": name, "top": [
                {"class": self.class_names[i], "index": int(i), "probability": float(p[i])}
                for i in top]})
        with epath.Path(out_dir, "predictions.json").open("w") as f:
            json.dump(results, f, indent=1)
        return results


@dataclasses.dataclass(frozen=True)
class ClassificationOptions:
    """Classification's options, read from the config's top level."""

    label_smoothing: float = option(0.0, "mix this much of the uniform distribution into the "
                                         "one-hot targets", check=in_range(0.0, 1.0,
                                                                           high_open=True))


def _create(options: ClassificationOptions, *, num_classes: int, info, data,
            model) -> ClassificationTask:
    del model  # any classifier
    if info.num_classes and num_classes != info.num_classes:
        raise ConfigError(
            f"config.num_classes={num_classes} but dataset {data.dataset!r} has "
            f"{info.num_classes} classes; set --config.num_classes={info.num_classes}")
    return ClassificationTask(num_classes, info.class_names, options.label_smoothing)


TASKS.register("classification", TaskEntry(create=_create, options=ClassificationOptions))
