"""Pair verification and one-shot identification: the AUC equals scikit-learn's
`roc_auc_score`, the threshold is the best on the validation part, and identification finds
the nearest reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from vision_jax.metrics import verification as vm


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True)])
def test_roc_auc_equals_scikit_learn(seed, ties):
    rng = np.random.default_rng(seed)
    same = rng.random(500) < 0.4
    scores = rng.normal(size=500) + same
    if ties:
        scores = np.round(scores)
    assert vm.roc_auc(scores, same) == pytest.approx(roc_auc_score(same, scores), rel=1e-12)


def test_roc_auc_needs_both_kinds_of_pair():
    with pytest.raises(ValueError, match="both positive and negative"):
        vm.roc_auc(np.ones(3), np.ones(3))


def test_best_threshold_is_the_best_a_brute_force_finds():
    rng = np.random.default_rng(2)
    same = rng.random(200) < 0.5
    scores = np.round(rng.normal(size=200) + 1.2 * same, 1)
    threshold, accuracy = vm.best_threshold(scores, same)
    assert accuracy == pytest.approx(accuracy_score(same, scores >= threshold))
    brute = max(accuracy_score(same, scores >= t) for t in np.r_[np.unique(scores), np.inf])
    assert accuracy == pytest.approx(brute)


def _clusters(seed: int, identities: int = 6, per_identity: int = 12, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, 16))
    labels = np.repeat(np.arange(identities) + 7, per_identity)
    return centres[labels - 7] + noise * rng.normal(size=(len(labels), 16)), labels


def test_pair_indices_follow_triu_order():
    for n in (2, 5, 37):
        first, second = np.triu_indices(n, k=1)
        i, j = vm._pair_from_index(np.arange(len(first)), n)
        assert i.tolist() == first.tolist() and j.tolist() == second.tolist()


def test_balanced_pairs_are_distinct_and_balanced():
    identities = np.repeat(np.arange(30), 3)  # 90 positive pairs, 3,915 negative
    pairs, same = vm.balanced_pairs(identities, seed=3)
    assert len(pairs) == 180 and same.sum() == 90
    assert len({tuple(p) for p in pairs.tolist()}) == 180
    assert np.array_equal(identities[pairs[:, 0]] == identities[pairs[:, 1]], same)
    capped, capped_same = vm.balanced_pairs(identities, seed=3, max_pairs=40)
    assert len(capped) == 40 and capped_same.sum() == 20


def test_pair_verification_on_separable_embeddings():
    embeddings, identities = _clusters(3)
    got = vm.pair_verification(embeddings, identities)
    pairs, same = vm.balanced_pairs(identities)
    assert same.mean() == 0.5 and np.all(pairs[:, 0] < pairs[:, 1])
    assert np.array_equal(identities[pairs[:, 0]] == identities[pairs[:, 1]], same)
    scores = vm.cosine_similarity(embeddings, embeddings)[pairs[:, 0], pairs[:, 1]]
    assert got["pair_auc"] == pytest.approx(roc_auc_score(same, scores), rel=1e-12)
    assert got["pair_auc"] > 0.99 and got["pair_accuracy"] > 0.95
    assert got["pairs"] == len(same)


def test_pair_accuracy_uses_the_validation_threshold_on_the_rest():
    embeddings, identities = _clusters(4, noise=1.5)
    got = vm.pair_verification(embeddings, identities, validation_fraction=0.5)
    pairs, same = vm.balanced_pairs(identities)
    scores = vm.cosine_similarity(embeddings, embeddings)[pairs[:, 0], pairs[:, 1]]
    half = int(round(0.5 * len(same)))
    threshold, _ = vm.best_threshold(scores[:half], same[:half])
    assert got["pair_threshold"] == pytest.approx(threshold, rel=1e-9)
    assert got["pair_accuracy"] == pytest.approx(np.mean((scores[half:] >= threshold)
                                                         == same[half:]))


def test_one_shot_identification_takes_the_nearest_reference():
    embeddings, identities = _clusters(5, noise=1.2)
    got = vm.one_shot_identification(embeddings, identities, seed=0)
    assert got["one_shot_references"] == 6 and got["one_shot_queries"] == len(identities) - 6
    # Brute force with the same references (drawn by the same seed).
    rng = np.random.default_rng(0)
    refs = [rng.choice(np.flatnonzero(identities == i)) for i in np.unique(identities)]
    correct = []
    for q in set(range(len(identities))) - set(refs):
        sims = [embeddings[q] @ embeddings[r] / np.linalg.norm(embeddings[q])
                / np.linalg.norm(embeddings[r]) for r in refs]
        correct.append(identities[refs[int(np.argmax(sims))]] == identities[q])
    assert got["one_shot_accuracy"] == pytest.approx(np.mean(correct))
    assert 0.3 < got["one_shot_accuracy"] < 1.0  # the noise makes it a real test


def test_collector_drops_padding():
    collector = vm.EmbeddingCollector()
    collector.add(np.ones((4, 3)), np.arange(4), np.float32([1, 1, 0, 1]))
    embeddings, identities = collector.arrays()
    assert embeddings.shape == (3, 3) and identities.tolist() == [0, 1, 3]
