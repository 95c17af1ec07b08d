"""Sigmoid binary cross-entropy for multi-label outputs, with optional per-label positive
weights (a rare label's positives count `pos_weight` times, as in PyTorch's
``BCEWithLogitsLoss(pos_weight=...)``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def sigmoid_bce(logits: jax.Array, labels: jax.Array,
                pos_weight: jax.Array | None = None) -> jax.Array:
    """Per-example loss (B,): the mean over labels of the binary cross-entropy of
    ``sigmoid(logits)`` (B, L) against multi-hot `labels` (B, L); positives weighted by
    `pos_weight` (L,) when given. Stable for any logit (softplus form)."""
    logits = jnp.asarray(logits, jnp.float32)
    labels = jnp.asarray(labels, jnp.float32)
    positive_term = labels * jax.nn.softplus(-logits)  # -y log sigmoid(x)
    if pos_weight is not None:
        positive_term = positive_term * jnp.asarray(pos_weight, jnp.float32)
    negative_term = (1.0 - labels) * jax.nn.softplus(logits)  # -(1 - y) log(1 - sigmoid(x))
    return jnp.mean(positive_term + negative_term, axis=-1)


def positive_weights(labels: np.ndarray, max_weight: float = 100.0) -> np.ndarray:
    """(L,) float32 weights that balance each label's positives against its negatives
    (negatives / positives, as PyTorch's documentation suggests), from the (N, L) multi-hot
    training labels; 1 for a label without positives, capped at `max_weight`."""
    labels = np.asarray(labels) > 0.5
    positives = labels.sum(0).astype(np.float64)
    negatives = labels.shape[0] - positives
    ratio = np.divide(negatives, positives, out=np.ones_like(positives), where=positives > 0)
    return np.clip(ratio, 0.0, max_weight).astype(np.float32)
