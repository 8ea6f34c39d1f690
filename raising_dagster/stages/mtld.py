"""MTLD, the measure of textual lexical diversity (McCarthy and Jarvis 2010): the mean length of
the runs of words whose type-token ratio stays above a threshold, read forward and backward.

`mtld` is the definition, one document at a time; `mtld_batch` computes the same numbers for a
whole Series of word lists at once: Polars turns the words into integer ids, and one loop
compiled with numba runs both passes of every document with the same arithmetic (so the same
floats, bit for bit; a test compares them on real text).
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl


def _mtld_pass(words: list[str], threshold: float) -> float:
    factors, seen, count = 0.0, set(), 0
    for word in words:
        count += 1
        seen.add(word)
        if len(seen) / count <= threshold:
            factors, seen, count = factors + 1, set(), 0
    if count:
        factors += (1 - len(seen) / count) / (1 - threshold)
    return len(words) / factors if factors else float(len(words))


def mtld(words: list[str], threshold: float) -> float:
    """MTLD of one document's words: the mean of the forward and backward passes (0 if none)."""
    if not words:
        return 0.0
    return (_mtld_pass(words, threshold) + _mtld_pass(words[::-1], threshold)) / 2


@numba.njit(cache=True, nogil=True)
def _mtld_ids(ids: np.ndarray, offsets: np.ndarray, n_types: int, threshold: float) -> np.ndarray:
    """`mtld` of each document: its words are ids[offsets[d]:offsets[d + 1]], ids < n_types."""
    out = np.empty(len(offsets) - 1, np.float64)
    seen_in = np.full(max(n_types, 1), -1, np.int64)  # the run in which a word was last seen
    run = 0
    for doc in range(len(offsets) - 1):
        start, end = offsets[doc], offsets[doc + 1]
        n = end - start
        if n == 0:
            out[doc] = 0.0
            continue
        total = 0.0
        for backward in range(2):
            factors, types, count = 0.0, 0, 0
            run += 1
            for k in range(n):
                word = ids[end - 1 - k] if backward else ids[start + k]
                count += 1
                if seen_in[word] != run:
                    seen_in[word] = run
                    types += 1
                if types / count <= threshold:
                    factors, types, count = factors + 1, 0, 0
                    run += 1
            if count:
                factors += (1 - types / count) / (1 - threshold)
            total += n / factors if factors else float(n)
        out[doc] = total / 2
    return out


def mtld_batch(word_lists: pl.Series, threshold: float) -> pl.Series:
    """`mtld` of every list of words of a Series (a null list counts as no words)."""
    lengths = word_lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    words = word_lists.explode(empty_as_null=False).drop_nulls()
    ids = words.cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    n_types = int(ids.max()) + 1 if len(ids) else 0
    return pl.Series(word_lists.name, _mtld_ids(ids, offsets, n_types, threshold))
