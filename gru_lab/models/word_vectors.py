"""Word vectors from the training texts alone (model.embedding_init: svd), to start an Embedding from.

Count how often each pair of words occurs within `window` tokens of each other, weigh the counts as positive
pointwise mutual information (PPMI, with the context counts raised to 0.75: Levy, Goldberg & Dagan 2015) and
keep the top `dim` singular directions (U * sqrt(S)). Nothing is downloaded and no label is read: an
embedding trained from scratch on 20k reviews memorizes them, while these vectors place a word that is rare
in the labelled reviews near the words it occurs with. NumPy, SciPy and scikit-learn only: no TensorFlow.
"""

from __future__ import annotations

import numpy as np

# Ids below this are not counted: 0 is padding, 1 the start mark (keras.datasets.imdb) or out-of-vocabulary
# (data.name: text); their rows stay zero.
FIRST_WORD = 2
# The vectors' scale: entries of standard deviation 0.05, a little over Keras's uniform(-0.05, 0.05) init
# (0.029), so that adam's first steps refine them rather than wash them out.
SCALE = 0.05


def cooccurrence(ids: np.ndarray, vocab_size: int, window: int = 5):
    """The symmetric V x V matrix of counts of word pairs at most `window` tokens apart, each weighed 1/distance."""
    from scipy import sparse

    ids = np.asarray(ids)
    total = sparse.csr_matrix((vocab_size, vocab_size), dtype=np.float32)
    for d in range(1, min(window, ids.shape[1] - 1) + 1):
        a, b = ids[:, :-d].ravel(), ids[:, d:].ravel()
        keep = (a >= FIRST_WORD) & (b >= FIRST_WORD) & (a < vocab_size) & (b < vocab_size)
        a, b = a[keep], b[keep]
        w = np.full(len(a), 1.0 / d, dtype=np.float32)
        part = sparse.coo_matrix((w, (a, b)), shape=(vocab_size, vocab_size)).tocsr()
        total = total + part + part.T
    return total


def ppmi(counts):
    """Positive PMI of a sparse count matrix, context distribution smoothed by 0.75."""
    from scipy import sparse

    coo = counts.tocoo()
    total = coo.data.sum()
    rows = np.asarray(counts.sum(axis=1)).ravel()
    cols = np.asarray(counts.sum(axis=0)).ravel() ** 0.75
    cols_total = cols.sum()
    with np.errstate(divide="ignore"):
        pmi = (np.log(coo.data) - np.log(total) - np.log(rows[coo.row] / total)
               - np.log(cols[coo.col] / cols_total))
    keep = pmi > 0
    return sparse.csr_matrix((pmi[keep].astype(np.float32), (coo.row[keep], coo.col[keep])), shape=counts.shape)


def svd_vectors(ids: np.ndarray, vocab_size: int, dim: int, seed: int = 0, window: int = 5) -> np.ndarray:
    """(vocab_size, dim) float32 word vectors from the token ids `ids` (rows of a padded id matrix)."""
    from sklearn.utils.extmath import randomized_svd

    matrix = ppmi(cooccurrence(ids, vocab_size, window))
    k = min(dim, vocab_size - 1)
    u, s, _ = randomized_svd(matrix, k, n_iter=5, random_state=seed)
    vectors = np.zeros((vocab_size, dim), dtype=np.float32)
    vectors[:, :k] = u * np.sqrt(s)
    vectors[np.diff(matrix.indptr) == 0] = 0.0  # a word never seen in context: exactly zero, not rounding noise
    std = vectors[FIRST_WORD:].std()
    return vectors * (SCALE / std) if std > 0 else vectors
