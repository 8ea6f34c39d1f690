"""Word lists shipped with the package (lexicons/), loaded once."""

from __future__ import annotations

from functools import cache
from importlib import resources

import polars as pl


@cache
def common_words() -> pl.Series:
    """The ~5,000 most frequent English words, most frequent first (wordfreq, CC BY-SA 4.0)."""
    path = resources.files("raising_dagster") / "lexicons" / "common_words_en.txt"
    lines = path.read_text("utf-8").splitlines()
    return pl.Series([w for w in lines if w and not w.startswith("#")], dtype=pl.String)


@cache
def stopwords() -> pl.Series:
    """Function words and very common verbs and adverbs (lexicons/stopwords_en.txt): never topic
    or grounding words."""
    path = resources.files("raising_dagster") / "lexicons" / "stopwords_en.txt"
    words = {
        w
        for line in path.read_text("utf-8").splitlines()
        if not line.startswith("#")
        for w in line.split()
    }
    return pl.Series(sorted(words), dtype=pl.String)
