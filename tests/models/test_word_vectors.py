"""model.embedding_init: svd: the co-occurrence counts, their PPMI weights and the word vectors, on tiny corpora."""

from __future__ import annotations

import numpy as np

from gru_lab.models import word_vectors as wv


def test_cooccurrence_counts_pairs_within_the_window_weighed_by_distance():
    # 0 (padding) and 1 (the start mark) are not words; 9 is outside a vocabulary of 8 and counts nothing.
    ids = np.array([[1, 2, 3, 4, 0, 0], [5, 3, 9, 3, 0, 0]])
    counts = wv.cooccurrence(ids, vocab_size=8, window=2).toarray()
    expected = np.zeros((8, 8), np.float32)
    for a, b, w in ((2, 3, 1.0), (3, 4, 1.0), (2, 4, 0.5), (5, 3, 1.0), (5, 3, 0.0), (3, 3, 0.5)):
        expected[a, b] += w
        expected[b, a] += w
    np.testing.assert_allclose(counts, expected)


def test_ppmi_is_the_positive_part_of_the_smoothed_pmi():
    from scipy import sparse

    c = np.array([[0, 4, 1], [4, 0, 2], [1, 2, 6]], np.float64)
    total, rows, cols = c.sum(), c.sum(axis=1), c.sum(axis=0) ** 0.75
    with np.errstate(divide="ignore"):
        pmi = np.log(c / total) - np.log(rows / total)[:, None] - np.log(cols / cols.sum())[None, :]
    expected = np.where(pmi > 0, pmi, 0.0)
    np.testing.assert_allclose(wv.ppmi(sparse.csr_matrix(c)).toarray(), expected, rtol=1e-5)


def test_words_that_share_their_contexts_get_close_vectors():
    # Two topics: words 2-6 only ever occur among themselves, words 7-11 likewise.
    rng = np.random.default_rng(0)
    topics = [np.arange(2, 7), np.arange(7, 12)]
    ids = np.stack([rng.choice(topics[i % 2], 30) for i in range(200)])
    vectors = wv.svd_vectors(ids, vocab_size=12, dim=4, seed=0)
    assert vectors.shape == (12, 4) and vectors.dtype == np.float32
    assert not vectors[:2].any()  # padding and the start mark never occur: zero rows
    unit = vectors[2:] / np.linalg.norm(vectors[2:], axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = [cosine[i, j] for t in (range(5), range(5, 10)) for i in t for j in t if i != j]
    other = [cosine[i, j] for i in range(5) for j in range(5, 10)]
    assert min(same) > max(other)
    assert abs(vectors[2:].std() - wv.SCALE) < 1e-6
