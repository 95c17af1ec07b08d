"""Verification metrics for learned embeddings, on identities never seen in training.

- pair verification: "same or different?" from the cosine similarity of two embeddings,
  scored by ROC AUC (rank-based, equal to scikit-learn's ``roc_auc_score``) and by the
  accuracy at a threshold chosen on a *validation part* of the pairs and applied to the rest;
- one-shot identification: one reference embedding per identity; every other example is
  given the identity of its nearest reference (cosine similarity).

Everything runs once on the host over the collected embeddings of a whole split (see
`EmbeddingCollector`), never averaged per batch.
"""

from __future__ import annotations

import numpy as np

from vision_jax.metrics.multilabel import host_array


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half (Mann-Whitney U from average ranks)."""
    scores, positives = np.asarray(scores, np.float64).ravel(), np.asarray(positives).ravel() > 0
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both positive and negative pairs; got "
                         f"{n_pos} positive and {n_neg} negative")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size)
    # Ties share the mean of the ranks they span (1-based).
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], scores.size]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def best_threshold(scores: np.ndarray, positives: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy): the similarity threshold (``score >= threshold`` means "same")
    with the best accuracy on these pairs, midway between neighbouring distinct scores."""
    scores, positives = np.asarray(scores, np.float64).ravel(), np.asarray(positives).ravel() > 0
    distinct = np.unique(scores)
    # Candidates: below everything, between each neighbouring pair, above everything.
    candidates = np.r_[distinct[0] - 1.0, (distinct[1:] + distinct[:-1]) / 2, distinct[-1] + 1.0]
    order = np.argsort(scores)
    sorted_scores, sorted_pos = scores[order], positives[order]
    below = np.searchsorted(sorted_scores, candidates, side="left")  # predicted "different"
    negatives_below = np.r_[0, np.cumsum(~sorted_pos)][below]
    positives_above = sorted_pos.sum() - np.r_[0, np.cumsum(sorted_pos)][below]
    correct = negatives_below + positives_above
    best = int(np.argmax(correct))
    return float(candidates[best]), float(correct[best] / scores.size)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) cosine similarities of rows of `a` (N, D) and `b` (M, D)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return a @ b.T


def _pair_from_index(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, of the k-th pair in `np.triu_indices(n, 1)` order, without building it."""
    k = np.asarray(k, np.float64)
    i = n - 2 - np.floor(np.sqrt(-8 * k + 4 * n * (n - 1) - 7) / 2 - 0.5)
    j = k + i + 1 - n * (n - 1) / 2 + (n - i) * (n - i - 1) / 2
    return i.astype(np.int64), j.astype(np.int64)


def balanced_pairs(identities: np.ndarray, seed: int = 0,
                   max_pairs: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (P, 2) of example indices i < j, same (P,) bool), in random order: every
    positive pair (two examples of one identity; up to max_pairs / 2 of them, drawn at random)
    and as many distinct random negative pairs, so that accuracy is not won by always
    answering "different". Memory grows with the pairs kept, not with N^2."""
    identities = np.asarray(identities)
    n = len(identities)
    rng = np.random.default_rng(seed)
    positives = []
    for name in np.unique(identities):
        members = np.flatnonzero(identities == name)
        a, b = np.triu_indices(len(members), k=1)
        positives.append(np.stack([members[a], members[b]], -1))
    positive = np.concatenate(positives) if positives else np.zeros((0, 2), np.int64)
    total = n * (n - 1) // 2
    count = min(len(positive), total - len(positive), max_pairs // 2)
    if count == 0:
        raise ValueError("verification needs at least two identities and an identity with two "
                         "examples")
    positive = positive[np.sort(rng.choice(len(positive), count, replace=False))]
    # Negatives: distinct pair indices drawn at random, keeping those across identities.
    negative = np.zeros(0, np.int64)
    while len(negative) < count:
        draw = rng.choice(total, min(total, 2 * count + 16), replace=False)
        i, j = _pair_from_index(draw, n)
        fresh = draw[identities[i] != identities[j]]
        negative = np.unique(np.r_[negative, fresh]) if len(negative) else np.unique(fresh)
    negative = rng.choice(negative, count, replace=False)
    pairs = np.r_[positive, np.stack(_pair_from_index(negative, n), -1)]
    same = np.r_[np.ones(count, bool), np.zeros(count, bool)]
    order = rng.permutation(2 * count)
    return pairs[order], same[order]


def pair_verification(embeddings: np.ndarray, identities: np.ndarray,
                      validation_fraction: float = 0.5, seed: int = 0) -> dict[str, float]:
    """ROC AUC over all the balanced pairs; the threshold of best accuracy on the first
    `validation_fraction` of them (random order) and the accuracy it gives on the rest."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction={validation_fraction} must lie in (0, 1)")
    pairs, same = balanced_pairs(identities, seed)
    embeddings = np.asarray(embeddings, np.float64)
    scores = _pair_cosine(embeddings, pairs)
    split = max(1, int(round(validation_fraction * len(same))))
    threshold, validation_accuracy = best_threshold(scores[:split], same[:split])
    test_scores, test_same = scores[split:], same[split:]
    return {
        "pair_auc": roc_auc(scores, same),
        "pair_threshold": threshold,
        "pair_validation_accuracy": validation_accuracy,
        "pair_accuracy": float(np.mean((test_scores >= threshold) == test_same)),
        "pairs": float(len(same)),
    }


def _pair_cosine(embeddings: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    a, b = embeddings[pairs[:, 0]], embeddings[pairs[:, 1]]
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.sum(a * b, -1) / np.maximum(norms, 1e-12)


def one_shot_identification(embeddings: np.ndarray, identities: np.ndarray,
                            seed: int = 0) -> dict[str, float]:
    """One reference per identity (drawn with `seed`); every other example takes the identity
    of its most similar reference. Returns accuracy, references and queries counts."""
    identities = np.asarray(identities)
    rng = np.random.default_rng(seed)
    names = np.unique(identities)
    references = np.asarray([rng.choice(np.flatnonzero(identities == name)) for name in names])
    queries = np.setdiff1d(np.arange(len(identities)), references)
    if len(names) < 2 or len(queries) == 0:
        raise ValueError("one-shot identification needs at least two identities and an "
                         "example beyond each identity's reference")
    nearest = np.argmax(cosine_similarity(embeddings[queries], embeddings[references]), -1)
    return {"one_shot_accuracy": float(np.mean(names[nearest] == identities[queries])),
            "one_shot_references": float(len(references)),
            "one_shot_queries": float(len(queries))}


def verification_metrics(embeddings: np.ndarray, identities: np.ndarray,
                         validation_fraction: float = 0.5, seed: int = 0) -> dict[str, float]:
    """Pair verification and one-shot identification of one split, in one dict."""
    return {**pair_verification(embeddings, identities, validation_fraction, seed),
            **one_shot_identification(embeddings, identities, seed)}


class EmbeddingCollector:
    """Host-side embeddings and identity labels of every real eval example."""

    def __init__(self):
        self._embeddings: list[np.ndarray] = []
        self._identities: list[np.ndarray] = []

    def add(self, embeddings, identities, mask=None) -> None:
        embeddings = host_array(embeddings).astype(np.float32)
        identities = host_array(identities)
        keep = np.ones(len(embeddings), bool) if mask is None else host_array(mask) > 0.5
        self._embeddings.append(embeddings[keep])
        self._identities.append(identities[keep])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._embeddings:
            raise ValueError("no batches were evaluated")
        return np.concatenate(self._embeddings), np.concatenate(self._identities)
