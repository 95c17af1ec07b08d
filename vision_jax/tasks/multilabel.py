"""Multi-label classification: one sigmoid output per label, binary cross-entropy (optional
per-label positive weights), and at the end per-label precision/recall/F1 at the thresholds,
per-label AP and mAP, subset accuracy and Hamming loss.

Thresholds on the probability are 0.5, one value, or one per label; with
`choose_thresholds`, each label's threshold is the one of best F1 on the evaluated split,
reported next to the figures at the configured ones and written to
``<prefix>_thresholds.json`` for `predict`. With one label this is the course's binary
"accuracy at 0.5" (the `accuracy` metric: the fraction of right label decisions).

Batches carry "image", "labels" (B, L) multi-hot and, in evaluation, "mask".
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from vision_jax.data.multilabel import multi_hot_record
from vision_jax.data.pipeline import ExampleSpec
from vision_jax.losses.multilabel import sigmoid_bce
from vision_jax.metrics import multilabel as ml
from vision_jax.tasks.base import SumAccumulator


def _select(record: dict) -> dict:
    return {"image": record["image"], "labels": record["labels"]}


def multilabel_spec(num_labels: int | None = None) -> ExampleSpec:
    """Batches of multi-hot records (the CSV folder source), or, given `num_labels`, of
    records that list their class ids under "labels" (`builtin:shapes_multilabel`, the TFDS
    catalog's VOC), turned multi-hot here. The shared host path stacks "labels" as float32."""
    select = _select if num_labels is None else functools.partial(
        multi_hot_record, num_labels=num_labels)
    return ExampleSpec(select=select, keys=frozenset({"labels"}))


# Flips, crops, rotations and colour changes never change which labels an image has.
MULTILABEL = multilabel_spec()


class MultilabelAccumulator:
    """Threshold sums added on device, plus every real example's (logits, labels) on the host
    for the rank-based AP and the threshold choice."""

    def __init__(self):
        self.sums = SumAccumulator()
        self.scores = ml.ScoreCollector()

    def add(self, outputs: dict) -> None:
        self.sums.add(outputs["sums"])
        self.scores.add(outputs["logits"], outputs["labels"], outputs["mask"])

    def result(self) -> dict:
        return self.sums.result()


class MultilabelTask:
    """Loss, metric sums and end-of-run reports for multi-label classification."""

    def __init__(self, num_labels: int, label_names: Sequence[str] | None = None,
                 thresholds: float | Sequence[float] = 0.5,
                 pos_weight: Sequence[float] | None = None, choose_thresholds: bool = False,
                 labels_as_ids: bool = False):
        self.num_labels = num_labels
        self.label_names = list(label_names or [f"label_{i}" for i in range(num_labels)])
        if len(self.label_names) != num_labels:
            raise ValueError(f"label_names has {len(self.label_names)} names for "
                             f"{num_labels} labels; give one name per label")
        self.thresholds = ml.probability_thresholds(thresholds, num_labels)
        self.pos_weight = None if pos_weight is None else np.asarray(pos_weight, np.float32)
        if self.pos_weight is not None and self.pos_weight.shape != (num_labels,):
            raise ValueError(f"pos_weight must give {num_labels} weights (one per label), "
                             f"got {self.pos_weight.shape[0]}")
        self.choose_thresholds = choose_thresholds
        self.labels_as_ids = labels_as_ids

    # -- inside jit --------------------------------------------------------------------------

    def _sums(self, logits, labels, mask=None) -> dict:
        per_example = sigmoid_bce(logits, labels, self.pos_weight)
        weights = jnp.ones_like(per_example) if mask is None else mask.astype(jnp.float32)
        sums = ml.threshold_sums(logits, labels, self.thresholds, mask)
        return {"loss": jnp.sum(per_example * weights), **sums}

    def loss(self, logits: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        logits = logits.astype(jnp.float32)
        sums = self._sums(logits, batch["labels"])
        train_sums = {k: sums[k] for k in ("loss", "exact_match", "wrong_labels", "count")}
        return sums["loss"] / sums["count"], train_sums

    def eval_outputs(self, logits: jax.Array, batch: dict) -> dict:
        logits = logits.astype(jnp.float32)
        return {"sums": self._sums(logits, batch["labels"], batch["mask"]), "logits": logits,
                "labels": batch["labels"], "mask": batch["mask"]}

    # -- on the host -------------------------------------------------------------------------

    def example_spec(self) -> ExampleSpec:
        """Multi-hot records as they are; with `labels_as_ids`, lists of class ids."""
        return multilabel_spec(self.num_labels) if self.labels_as_ids else MULTILABEL

    @staticmethod
    def new_accumulator() -> MultilabelAccumulator:
        return MultilabelAccumulator()

    def _label_wise(self, sums: dict) -> dict[str, float]:
        count = max(float(sums["count"]), 1.0)
        wrong = float(sums["wrong_labels"]) / (count * self.num_labels)
        return {"loss": float(sums["loss"]) / count,
                "subset_accuracy": float(sums["exact_match"]) / count,
                "hamming_loss": wrong, "accuracy": 1.0 - wrong}

    def chosen_thresholds(self, accumulator: MultilabelAccumulator) -> np.ndarray:
        """Best-F1 thresholds on the accumulated split, or the configured ones."""
        if not self.choose_thresholds:
            return self.thresholds
        return ml.best_f1_thresholds(*accumulator.scores.arrays())

    def summarize(self, sums) -> dict[str, float]:
        """Train sums -> loss, subset_accuracy, hamming_loss, accuracy. An eval accumulator
        adds map, macro_f1, ap/<label>, f1/<label> at the configured thresholds and, with
        `choose_thresholds`, chosen_macro_f1, chosen_f1/<label> and threshold/<label>."""
        if not isinstance(sums, MultilabelAccumulator):
            return self._label_wise(sums)
        totals = sums.result()
        out = self._label_wise(totals)
        logits, labels = sums.scores.arrays()
        ap = ml.average_precision(logits, labels)
        f1 = ml.metrics_from_sums(totals)["f1"]
        out.update({"map": float(ap.mean()), "macro_f1": float(f1.mean())})
        for name, value_ap, value_f1 in zip(self.label_names, ap, f1, strict=True):
            out[f"ap/{name}"], out[f"f1/{name}"] = float(value_ap), float(value_f1)
        if self.choose_thresholds:
            chosen = self.chosen_thresholds(sums)
            chosen_f1 = ml.metrics_from_sums(ml.host_threshold_sums(logits, labels, chosen))["f1"]
            out["chosen_macro_f1"] = float(chosen_f1.mean())
            for name, t, value in zip(self.label_names, chosen, chosen_f1, strict=True):
                out[f"threshold/{name}"], out[f"chosen_f1/{name}"] = float(t), float(value)
        return out

    def write_report(self, accumulator: MultilabelAccumulator, out_dir: str,
                     prefix: str = "eval") -> dict:
        """`<prefix>_multilabel_report.{txt,json}` at the thresholds in use (chosen on this
        split with `choose_thresholds`), `<prefix>_label_metrics.png` and
        `<prefix>_thresholds.json` ({label: threshold}, how they were set)."""
        from vision_jax.viz.multilabel import plot_label_metrics

        thresholds = self.chosen_thresholds(accumulator)
        logits, labels = accumulator.scores.arrays()
        report = ml.multilabel_report(logits, labels, self.label_names, thresholds)
        with epath.Path(out_dir, f"{prefix}_multilabel_report.txt").open("w") as f:
            f.write(ml.format_multilabel_report(report))
        with epath.Path(out_dir, f"{prefix}_multilabel_report.json").open("w") as f:
            json.dump(report, f, indent=1)
        with epath.Path(out_dir, f"{prefix}_thresholds.json").open("w") as f:
            json.dump({"rule": f"best F1 on {prefix}" if self.choose_thresholds else "config",
                       "thresholds": dict(zip(self.label_names, map(float, thresholds),
                                              strict=True))}, f, indent=1)
        plot_label_metrics(report, os.path.join(out_dir, f"{prefix}_label_metrics.png"))
        return report

    def write_examples(self, batch: dict, logits: np.ndarray, out_dir: str,
                       prefix: str = "eval") -> None:
        """Nothing beyond the report and the bar chart for now."""

    def write_predictions(self, images: np.ndarray, logits: np.ndarray, names: list[str],
                          out_dir: str) -> list[dict]:
        """Per image, every label's probability and the labels at or above their threshold,
        as `predictions.json`."""
        probs = np.asarray(jax.nn.sigmoid(jnp.asarray(logits, jnp.float32)))
        results = []
        for name, p in zip(names, probs, strict=True):
            results.append({
                "image": name,
                "probabilities": {label: float(v)
                                  for label, v in zip(self.label_names, p, strict=True)},
                "labels": [label for label, v, t in zip(self.label_names, p, self.thresholds,
                                                        strict=True) if v >= t]})
        with epath.Path(out_dir, "predictions.json").open("w") as f:
            json.dump(results, f, indent=1)
        return results


def load_thresholds(path: str, label_names: Sequence[str]) -> np.ndarray:
    """The per-label thresholds a run wrote (`<prefix>_thresholds.json`), in `label_names`
    order, e.g. for `MultilabelTask(thresholds=...)` in predict."""
    with epath.Path(path).open() as f:
        saved = json.load(f)["thresholds"]
    missing = [name for name in label_names if name not in saved]
    if missing:
        raise ValueError(f"{path} has no threshold for labels {missing}; it was written for "
                         f"labels {list(saved)}")
    return np.asarray([saved[name] for name in label_names], np.float32)
