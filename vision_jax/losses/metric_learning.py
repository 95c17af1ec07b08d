"""Metric-learning losses over a batch of embeddings and identity labels: triplet loss with
semi-hard negative mining (FaceNet, Schroff et al. 2015) and the contrastive pair loss.

Both see the *global* batch: under plain `jit` with the batch sharded over the mesh, XLA
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


def gather_batch(tree, axis_name: str | tuple[str, ...]):
    """Inside `shard_map`: each device's slice of a batch pytree -> the whole global batch,
    in device order (``all_gather`` along the leading axis)."""
    return jax.tree.map(lambda x: jax.lax.all_gather(x, axis_name, tiled=True), tree)


LOSSES = {"triplet": triplet_semihard_loss, "contrastive": contrastive_loss}
