"""Multi-label classification: one sigmoid output per label, binary cross-entropy (optional
per-label positive weights), and at the end per-label precision/recall/F1 at the thresholds,
per-label AP and mAP, subset accuracy and Hamming loss.

Thresholds on the probability are 0.5, one value, or one per label; with
`choose_thresholds`, each label's threshold is the one of best F1 on the evaluated split,
reported next to the figures at the configured ones and written to
``<prefix>_thresholds.json`` for `predict`. With one label this is the course's binary
"accuracy at 0.5" (the `accuracy` metric: the fraction of right label decisions).

Batches carry "image", "labels" (B, L) multi-hot and, in evaluation, "mask".

Config (`config.multilabel`, `MultilabelOptions`): label_names, thresholds,
choose_thresholds, pos_weight. `config.num_classes` is the number of labels. Datasets:
`builtin:shapes_multilabel`, `tfds:voc/2007` and `multilabel_folder:<folder of CSVs>`, whose
records all list their label ids under "labels".
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

# Imported for its side effect: registers the `multilabel_folder:` dataset scheme.
from vision_jax.data import multilabel_csv  # noqa: F401
from vision_jax.data.multilabel import dataset_label_names, multi_hot_record
from vision_jax.data.pipeline import ExampleSpec
from vision_jax.errors import ConfigError
from vision_jax.losses.multilabel import sigmoid_bce
from vision_jax.metrics import multilabel as ml
from vision_jax.sections import option
from vision_jax.tasks import TASKS
from vision_jax.tasks.base import SumAccumulator, TaskEntry

THRESHOLDS_FILE = "{prefix}_thresholds.json"  # in the workdir; `predict` reads "eval"


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
        self.run_dir: str | None = None

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
        with epath.Path(out_dir, THRESHOLDS_FILE.format(prefix=prefix)).open("w") as f:
            json.dump({"rule": f"best F1 on {prefix}" if self.choose_thresholds else "config",
                       "thresholds": dict(zip(self.label_names, map(float, thresholds),
                                              strict=True))}, f, indent=1)
        plot_label_metrics(report, os.path.join(out_dir, f"{prefix}_label_metrics.png"))
        return report

    def write_examples(self, batch: dict, logits: np.ndarray, out_dir: str,
                       prefix: str = "eval") -> None:
        """Nothing beyond the report and the bar chart for now."""

    def saved_thresholds(self, out_dir: str) -> tuple[np.ndarray, str]:
        """(thresholds, where from) for predictions: the run's `eval_thresholds.json` (in
        `workdir` once `use_run_thresholds(workdir)` was called, else in `out_dir` or its
        parent, where `predict` writes by default: ``<workdir>/predictions``), or the
        configured thresholds when the run wrote none."""
        folders = [self.run_dir] if self.run_dir else [out_dir, os.path.dirname(
            os.path.abspath(out_dir))]
        for folder in folders:
            path = os.path.join(folder, THRESHOLDS_FILE.format(prefix="eval"))
            if os.path.isfile(path):
                return load_thresholds(path, self.label_names), path
        return self.thresholds, "config"

    def use_run_thresholds(self, workdir: str) -> None:
        """Predictions use the thresholds the run in `workdir` saved."""
        self.run_dir = workdir

    def write_predictions(self, images: np.ndarray, logits: np.ndarray, names: list[str],
                          out_dir: str) -> list[dict]:
        """Per image, every label's probability and the labels at or above their threshold
        (the run's saved ones, see `saved_thresholds`), as `predictions.json`; the
        thresholds used and their origin go to `thresholds_used.json`."""
        thresholds, origin = self.saved_thresholds(out_dir)
        probs = np.asarray(jax.nn.sigmoid(jnp.asarray(logits, jnp.float32)))
        results = []
        for name, p in zip(names, probs, strict=True):
            results.append({
                "image": name,
                "probabilities": {label: float(v)
                                  for label, v in zip(self.label_names, p, strict=True)},
                "labels": [label for label, v, t in zip(self.label_names, p, thresholds,
                                                        strict=True) if v >= t]})
        with epath.Path(out_dir, "predictions.json").open("w") as f:
            json.dump(results, f, indent=1)
        with epath.Path(out_dir, "thresholds_used.json").open("w") as f:
            json.dump({"from": origin, "thresholds": dict(zip(
                self.label_names, map(float, thresholds), strict=True))}, f, indent=1)
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


def _thresholds(value: Any) -> str | None:
    values = np.ravel(np.asarray(value, np.float64)) if np.ndim(value) else [value]
    if not len(values) or not all(isinstance(v, (int, float, np.floating)) and 0 < v < 1
                                  for v in values):
        return "must be one probability in (0, 1) or one per label, e.g. 0.5"
    return None


@dataclasses.dataclass(frozen=True)
class MultilabelOptions:
    """``config.multilabel`` (`config.num_classes` is the number of labels)."""

    label_names: tuple[str, ...] = option((), "names for reports; () = the dataset's")
    thresholds: Any = option(0.5, "probability threshold of a label: one value or one per "
                                  "label", check=_thresholds)
    choose_thresholds: bool = option(False, "choose each label's threshold by best F1 on the "
                                            "eval split; saved for predict")
    pos_weight: tuple[float, ...] = option((), "one weight per label for its positives in "
                                               "the BCE (e.g. negatives / positives), or ()")


def check_multilabel_options(options: MultilabelOptions, *, num_classes: int,
                             augment: Any, model: Any = None) -> None:
    """The per-label fields against `config.num_classes`."""
    for field in ("label_names", "pos_weight"):
        values = getattr(options, field)
        if values and len(values) != num_classes:
            raise ConfigError(f"config.multilabel.{field} has {len(values)} entries for "
                              f"config.num_classes={num_classes} labels; give one per label")
    if np.ndim(options.thresholds) and np.size(options.thresholds) != num_classes:
        raise ConfigError(f"config.multilabel.thresholds has {np.size(options.thresholds)} "
                          f"values for config.num_classes={num_classes} labels; give one "
                          "value or one per label")
    if any(w < 0 for w in options.pos_weight):
        raise ConfigError("config.multilabel.pos_weight must be non-negative")


def _create(options: MultilabelOptions, *, num_classes: int, info, data,
            model: Any = None) -> MultilabelTask:
    names = options.label_names or info.class_names or dataset_label_names(
        data.dataset, data.data_dir)
    if not options.label_names and names and len(names) != num_classes:
        raise ConfigError(f"config.num_classes={num_classes} but dataset {data.dataset!r} has "
                          f"{len(names)} labels ({', '.join(names)}); set "
                          f"--config.num_classes={len(names)}")
    thresholds = options.thresholds
    return MultilabelTask(num_classes, names or None,
                          tuple(thresholds) if np.ndim(thresholds) else float(thresholds),
                          options.pos_weight or None, options.choose_thresholds,
                          labels_as_ids=True)


TASKS.register("multilabel", TaskEntry(create=_create, options=MultilabelOptions,
                                       group="multilabel", check=check_multilabel_options))
