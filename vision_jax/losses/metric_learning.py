"""Metric-learning losses over a batch of embeddings and identity labels: triplet loss with
semi-hard negative mining (FaceNet, Schroff et al. 2015), the contrastive pair loss and the
supervised contrastive loss (Khosla et al. 2020).

All three see the *global* batch: under plain `jit` with the batch sharded over the mesh, XLA
computes the pairwise distances across devices; under `shard_map`, call `gather_batch` first
so every device mines among all examples, not only its own. Either way the loss equals the
one-device loss of the same global batch. `mask` (B,) leaves padding examples out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pairwise_distances(embeddings: jax.Array) -> jax.Array:
    """(B, B) Euclidean distances, with a gradient that stays finite at zero distance."""
    x = jnp.asarray(embeddings, jnp.float32)
    squared = jnp.sum(x * x, -1)
    d2 = jnp.maximum(squared[:, None] - 2.0 * x @ x.T + squared[None, :], 0.0)
    eye = jnp.eye(x.shape[0], dtype=bool)
    safe = jnp.where(eye | (d2 == 0.0), 1.0, d2)
    return jnp.where(eye | (d2 == 0.0), 0.0, jnp.sqrt(safe))


def _pair_masks(labels: jax.Array, mask: jax.Array | None):
    labels = jnp.asarray(labels)
    valid = jnp.ones(labels.shape, bool) if mask is None else jnp.asarray(mask) > 0.5
    both = valid[:, None] & valid[None, :]
    same = labels[:, None] == labels[None, :]
    positives = same & both & ~jnp.eye(labels.shape[0], dtype=bool)
    negatives = ~same & both
    return positives, negatives


def triplet_semihard_loss(embeddings: jax.Array, labels: jax.Array, margin: float = 0.2,
                          mask: jax.Array | None = None) -> jax.Array:
    """Mean over anchor-positive pairs of ``max(d(a, p) - d(a, n) + margin, 0)``.

    The negative n of a pair is the closest one *farther* than the positive (semi-hard);
    where the anchor has none, its farthest negative. Pairs whose anchor has no negative at
    all do not count. Mining sorts each anchor's negative distances once, so memory is
    O(B^2), not the O(B^3) of comparing every pair with every negative.
    """
    distances = pairwise_distances(embeddings)
    positives, negatives = _pair_masks(labels, mask)
    # Each anchor's negative distances in ascending order, non-negatives pushed to the end.
    sorted_negatives = jnp.sort(jnp.where(negatives, distances, jnp.inf), axis=-1)
    num_negatives = jnp.sum(negatives, -1)
    # For pair (a, p): index of the first negative strictly farther than d(a, p).
    first_farther = jax.vmap(lambda row, d: jnp.searchsorted(row, d, side="right"))(
        sorted_negatives, distances)
    has_semihard = first_farther < num_negatives[:, None]
    semihard = jnp.take_along_axis(
        sorted_negatives, jnp.minimum(first_farther, distances.shape[0] - 1), -1)
    farthest = jnp.take_along_axis(
        sorted_negatives, jnp.maximum(num_negatives - 1, 0)[:, None], -1)
    negative_distance = jnp.where(has_semihard, semihard, farthest)
    counted = positives & (num_negatives > 0)[:, None]
    hinge = jnp.maximum(distances - jnp.where(counted, negative_distance, 0.0) + margin, 0.0)
    total = jnp.sum(jnp.where(counted, hinge, 0.0))
    return total / jnp.maximum(jnp.sum(counted), 1)


def contrastive_loss(embeddings: jax.Array, labels: jax.Array, margin: float = 1.0,
                     mask: jax.Array | None = None) -> jax.Array:
    """Mean over all pairs (i != j) of ``d^2`` for a same-identity pair and
    ``max(margin - d, 0)^2`` for a different one (Hadsell et al. 2006), halved."""
    distances = pairwise_distances(embeddings)
    positives, negatives = _pair_masks(labels, mask)
    per_pair = jnp.where(positives, distances**2,
                         jnp.where(negatives, jnp.maximum(margin - distances, 0.0) ** 2, 0.0))
    return 0.5 * jnp.sum(per_pair) / jnp.maximum(jnp.sum(positives | negatives), 1)


def supervised_contrastive_loss(embeddings: jax.Array, labels: jax.Array,
                                temperature: float = 0.1,
                                mask: jax.Array | None = None) -> jax.Array:
    """Mean over anchors that have a positive of ``-mean_p log softmax_a(<x_i, x_a> / t)[p]``:
    each anchor's softmax over every other example, averaged over its positives (Khosla et
    al. 2020, the "outside" form). `embeddings` are unit vectors, so ``<x_i, x_a>`` is their
    cosine similarity. Every example is a negative for every other identity at once, not only
    the one semi-hard negative a triplet uses."""
    x = jnp.asarray(embeddings, jnp.float32)
    positives, negatives = _pair_masks(labels, mask)
    others = positives | negatives  # every valid example but the anchor itself
    logits = jnp.where(others, x @ x.T / temperature, -jnp.inf)
    # An anchor with no other valid example has an all -inf row: keep it finite, it is not
    # counted below.
    log_norm = jax.nn.logsumexp(jnp.where(others.any(-1, keepdims=True), logits, 0.0),
                                axis=-1, keepdims=True)
    log_prob = jnp.where(positives, logits - log_norm, 0.0)
    num_positives = jnp.sum(positives, -1)
    per_anchor = -jnp.sum(log_prob, -1) / jnp.maximum(num_positives, 1)
    counted = num_positives > 0
    return jnp.sum(jnp.where(counted, per_anchor, 0.0)) / jnp.maximum(jnp.sum(counted), 1)


def gather_batch(tree, axis_name: str | tuple[str, ...]):
    """Inside `shard_map`: each device's slice of a batch pytree -> the whole global batch,
    in device order (``all_gather`` along the leading axis)."""
    return jax.tree.map(lambda x: jax.lax.all_gather(x, axis_name, tiled=True), tree)


# name -> loss(embeddings, labels, hyperparameter, mask): a margin for the first two, a
# temperature for "supcon".
LOSSES = {"triplet": triplet_semihard_loss, "contrastive": contrastive_loss,
          "supcon": supervised_contrastive_loss}
