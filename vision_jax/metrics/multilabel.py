"""Multi-label metrics: per-label precision/recall/F1 and support at thresholds, per-label
average precision and mAP, subset accuracy and Hamming loss.

Two halves, so that every figure is computed once over the whole split:

- `threshold_sums` runs inside the jitted eval step and returns *sums* (per-label true/false
  positives and negatives, exact-match and wrong-decision counts) that add up over batches,
  devices and processes;
- average precision is rank-based, so no fixed-size sum gives it exactly:
  `ScoreCollector` keeps the (score, label) rows of every real eval example on the host and
  `average_precision` ranks them once, with scikit-learn's definition
  (``average_precision_score``: ``sum_n (R_n - R_{n-1}) P_n`` over the distinct scores).

Scores are logits (or any score monotone in the probability): ranking logits rather than
sigmoid probabilities keeps apart examples whose probabilities round to the same float32.
Definitions follow scikit-learn with ``zero_division=0``; a label with no positive example has
AP 0 (as ``average_precision_score`` gives it, with its warning).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

SUM_KEYS = ("true_positives", "false_positives", "false_negatives", "support", "exact_match",
            "wrong_labels", "count")


def probability_thresholds(thresholds: float | Sequence[float], num_labels: int) -> np.ndarray:
    """(num_labels,) float32 thresholds on the probability from one value or one per label."""
    values = np.broadcast_to(np.asarray(thresholds, np.float32), (num_labels,)) \
        if np.ndim(thresholds) == 0 else np.asarray(thresholds, np.float32)
    if values.shape != (num_labels,):
        raise ValueError(f"thresholds must be one value or {num_labels} (one per label), "
                         f"got {values.shape[0]}")
    if np.any((values <= 0) | (values >= 1)):
        raise ValueError(f"thresholds must lie in (0, 1), got {values.tolist()}")
    return values


def threshold_sums(logits: jax.Array, labels: jax.Array, thresholds: jax.Array,
                   mask: jax.Array | None = None) -> dict[str, jax.Array]:
    """Sums of one batch at per-label probability `thresholds` (jit-able).

    A label is predicted when ``sigmoid(logit) >= threshold``. `labels` is multi-hot (B, L);
    `mask` (B,) leaves padding examples out. Per-label keys are (L,) vectors.
    """
    labels = jnp.asarray(labels) > 0.5
    predicted = jax.nn.sigmoid(jnp.asarray(logits, jnp.float32)) >= jnp.asarray(thresholds)
    valid = (jnp.ones(labels.shape[:1], bool) if mask is None
             else jnp.asarray(mask).astype(bool))[:, None]
    count = jnp.sum(valid, dtype=jnp.float32)
    as_sum = lambda x, axis=0: jnp.sum(x & valid, axis=axis, dtype=jnp.float32)  # noqa: E731
    wrong = predicted != labels
    return {
        "true_positives": as_sum(predicted & labels),
        "false_positives": as_sum(predicted & ~labels),
        "false_negatives": as_sum(~predicted & labels),
        "support": as_sum(labels),
        "exact_match": jnp.sum(~jnp.any(wrong, -1) & valid[:, 0], dtype=jnp.float32),
        "wrong_labels": as_sum(wrong, axis=None),
        "count": count,
    }


def _ratio(numerator, denominator) -> np.ndarray:
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def metrics_from_sums(sums: dict) -> dict[str, np.ndarray | float]:
    """Per-label precision, recall, f1, support (arrays) and subset_accuracy, hamming_loss."""
    tp, fp, fn = (np.asarray(sums[k], np.float64)
                  for k in ("true_positives", "false_positives", "false_negatives"))
    count = float(sums["count"])
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        # F1 from counts, as scikit-learn computes it (not from the rounded ratios).
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "support": np.asarray(sums["support"]).astype(np.int64),
        "subset_accuracy": float(_ratio(sums["exact_match"], count)),
        "hamming_loss": float(_ratio(sums["wrong_labels"], count * tp.shape[0])),
    }


def host_threshold_sums(scores: np.ndarray, labels: np.ndarray,
                        thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """`threshold_sums` on host arrays of logits (N, L): the same counts, in NumPy."""
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        sums = threshold_sums(scores, labels, thresholds)
    return {k: np.asarray(v) for k, v in sums.items()}


def _label_average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """scikit-learn's average precision of one label: precision at each distinct score
    (all tied examples enter together), weighted by the recall it adds."""
    total = int(positives.sum())
    if total == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    scores, positives = scores[order], positives[order]
    # The last index of each run of equal scores: a threshold takes the whole run.
    ends = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    true_pos = np.cumsum(positives)[ends].astype(np.float64)
    precision = true_pos / (ends + 1)
    recall_gain = np.diff(np.r_[0.0, true_pos]) / total
    return float(np.sum(recall_gain * precision))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-label AP (L,) of scores (N, L) against multi-hot labels (N, L); its mean is mAP
    (``average_precision_score(labels, scores, average=None / "macro")``)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels) > 0.5
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must both be (N, L)")
    return np.asarray([_label_average_precision(scores[:, k], labels[:, k])
                       for k in range(scores.shape[1])])


def best_f1_thresholds(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-label probability threshold with the best F1 on these examples (N, L).

    Every distinct score is a candidate (predicting it and everything above); the threshold
    returned is the sigmoid of the chosen logit, so ``sigmoid(logit) >= threshold`` reproduces
    the choice (up to float32 rounding of the probability). A label without positives keeps
    0.5. Ties in F1 go to the higher threshold.
    """
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels) > 0.5
    chosen = np.zeros(logits.shape[1], np.float32)  # logit 0 = probability 0.5
    for k in range(logits.shape[1]):
        total = int(labels[:, k].sum())
        if total == 0:
            continue
        order = np.argsort(-logits[:, k], kind="stable")
        scores, positives = logits[order, k], labels[order, k]
        ends = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
        true_pos = np.cumsum(positives)[ends]
        f1 = 2 * true_pos / (ends + 1 + total)
        chosen[k] = scores[ends[int(np.argmax(f1))]]  # first maximum = highest score
    # The same float32 sigmoid as `threshold_sums`, so the chosen logit clears its threshold.
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        probabilities = np.asarray(jax.nn.sigmoid(jnp.asarray(chosen)))
    return np.clip(probabilities, np.float32(1e-7), np.nextafter(np.float32(1), np.float32(0)))


def host_array(x) -> np.ndarray:
    """A batch output as NumPy on this host; a replicated array spanning several processes
    (eval outputs are replicated) is read from its local copy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(jax.device_get(x))


class ScoreCollector:
    """Host-side (logits, labels) rows of every real eval example, in arrival order.

    `add(logits, labels, mask)` takes a batch (device or host arrays); rows whose mask is 0
    (padding) are dropped. `arrays()` returns (N, L) logits and (N, L) multi-hot labels.
    """

    def __init__(self):
        self._logits: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def add(self, logits, labels, mask=None) -> None:
        logits, labels = host_array(logits), host_array(labels)
        keep = np.ones(len(logits), bool) if mask is None else host_array(mask) > 0.5
        self._logits.append(logits[keep].astype(np.float32))
        self._labels.append(labels[keep].astype(np.uint8))

    def __len__(self) -> int:
        return sum(len(x) for x in self._logits)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._logits:
            raise ValueError("no batches were evaluated")
        return np.concatenate(self._logits), np.concatenate(self._labels)


def multilabel_report(logits: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
                      thresholds: float | Sequence[float] = 0.5) -> dict:
    """Everything about one split: per label precision, recall, f1-score, support,
    average_precision and threshold; then "mAP", "subset_accuracy", "hamming_loss", and
    "macro avg" / "micro avg" of precision, recall and F1 (scikit-learn's definitions)."""
    logits, labels = np.asarray(logits, np.float32), np.asarray(labels)
    if len(label_names) != logits.shape[1]:
        raise ValueError(f"label_names has {len(label_names)} names for {logits.shape[1]} "
                         "labels; give one name per label")
    thresholds = probability_thresholds(thresholds, logits.shape[1])
    sums = host_threshold_sums(logits, labels, thresholds)
    values = metrics_from_sums(sums)
    ap = average_precision(logits, labels)
    report: dict = {}
    for k, name in enumerate(label_names):
        report[str(name)] = {
            "precision": float(values["precision"][k]), "recall": float(values["recall"][k]),
            "f1-score": float(values["f1"][k]), "support": int(values["support"][k]),
            "average_precision": float(ap[k]), "threshold": float(thresholds[k])}
    tp, fp, fn = (float(np.sum(sums[k])) for k in
                  ("true_positives", "false_positives", "false_negatives"))
    support = int(values["support"].sum())
    report["macro avg"] = {"precision": float(values["precision"].mean()),
                           "recall": float(values["recall"].mean()),
                           "f1-score": float(values["f1"].mean()), "support": support}
    report["micro avg"] = {"precision": float(_ratio(tp, tp + fp)),
                           "recall": float(_ratio(tp, tp + fn)),
                           "f1-score": float(_ratio(2 * tp, 2 * tp + fp + fn)),
                           "support": support}
    report["mAP"] = float(ap.mean())
    report["subset_accuracy"] = values["subset_accuracy"]
    report["hamming_loss"] = values["hamming_loss"]
    report["examples"] = int(sums["count"])
    return report


def format_multilabel_report(report: dict, digits: int = 3) -> str:
    """The report as a text table (one row per label, then the averages and totals)."""
    headers = ("precision", "recall", "f1-score", "AP", "threshold", "support")
    averages = ("macro avg", "micro avg")
    names = [k for k, v in report.items() if isinstance(v, dict) and k not in averages]
    totals = ("mAP", "subset_accuracy", "hamming_loss", "examples")
    width = max([len(n) for n in names] + [len(t) for t in totals])

    def row(name: str, entry: dict) -> str:
        cells = [entry["precision"], entry["recall"], entry["f1-score"],
                 entry.get("average_precision"), entry.get("threshold")]
        text = "".join(f" {'':>9}" if c is None else f" {c:>9.{digits}f}" for c in cells)
        return f"{name:>{width}} {text} {entry['support']:>9}\n"

    text = f"{'':>{width}} " + "".join(f" {h:>9}" for h in headers) + "\n\n"
    text += "".join(row(n, report[n]) for n in names) + "\n"
    # The macro average of the per-label APs is the mAP.
    text += row("macro avg", {**report["macro avg"], "average_precision": report["mAP"]})
    text += row("micro avg", report["micro avg"])
    text += "\n" + "".join(f"{key:>{width}}  {report[key]:.{digits}f}\n" for key in totals[:3])
    return text + f"{'examples':>{width}}  {report['examples']}\n"
