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


def balanced_pairs(identities: np.ndarray, seed: int = 0,
                   max_pairs: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (P, 2) of example indices, same (P,) bool): every positive pair (two examples of
    one identity, up to max_pairs / 2 drawn at random) and as many random negative pairs, so
    that accuracy is not won by always answering "different"."""
    identities = np.asarray(identities)
    rng = np.random.default_rng(seed)
    first, second = np.triu_indices(len(identities), k=1)
    same = identities[first] == identities[second]
    positive, negative = np.flatnonzero(same), np.flatnonzero(~same)
    count = min(len(positive), len(negative), max_pairs // 2)
    if count == 0:
        raise ValueError("verification needs at least two identities and an identity with two "
                         "examples")
    chosen = np.r_[rng.choice(positive, count, replace=False),
                   rng.choice(negative, count, replace=False)]
    chosen = chosen[rng.permutation(len(chosen))]
    return np.stack([first[chosen], second[chosen]], -1), same[chosen]


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
