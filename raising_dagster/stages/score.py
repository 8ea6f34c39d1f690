"""Difficulty and value signals per document, vectorized in Polars.

Signals (each kept as a column) and the [0, 1] scale each is mapped to before weighting:
- `fk_grade`: Flesch-Kincaid grade, 0.39 * words/sentence + 11.8 * syllables/word - 15.59, with
  syllables approximated by vowel groups, minus a silent final e after a
  consonant (not -le); scale clip(grade, 0, 18) / 18.
- `lexical_diversity`: type-token ratio of the first 100 words; scale clip((ttr - 0.4) / 0.5, 0, 1).
- `compression_ratio`: zlib-compressed bytes over raw bytes (redundant text compresses well);
  scale clip((ratio - 0.3) / 0.5, 0, 1).
- `n_tokens`: word and punctuation pieces; scale clip((log10(n) - 1.3) / 2, 0, 1)
  (20 -> 0, 2000 -> 1).
Type-token ratio and compression ratio read high on any short text (nothing repeats yet), so both
scaled values are multiplied by min(1, words / 100): short texts count as simple on them.
`difficulty` is the weighted mean of the scaled signals with the configured weights.
"""

from __future__ import annotations

import zlib

import polars as pl

from raising_dagster.config import ScoringSettings, ValueCodex
from raising_dagster.schema import SCORE_SCHEMA
from raising_dagster.stages.values import WORDS, value_signals

TOKENS = r"\w+|[^\w\s]"
TENSION = (
    r"(?i)\b(dilemma|torn between|on the other hand|at the cost of|should (she|he|they|i|we))\b"
)


def _compression_ratio(texts: pl.Series) -> pl.Series:
    ratios = []
    for text in texts:
        raw = text.encode()
        ratios.append(len(zlib.compress(raw, 6)) / max(len(raw), 1))
    return pl.Series(ratios, dtype=pl.Float64)


def _syllables(texts: pl.Expr) -> pl.Expr:
    vowel_groups = texts.str.count_matches(r"(?i)[aeiouy]+")
    silent_e = texts.str.count_matches(r"(?i)[aeiouy][^aeiouy\s]*[^aeiouy\sl]e\b")
    return (vowel_groups - silent_e).clip(lower_bound=texts.str.count_matches(WORDS))


def difficulty_signals(texts: pl.Expr) -> list[pl.Expr]:
    """The raw readability signals of a text expression."""
    n_words = texts.str.count_matches(WORDS).clip(lower_bound=1)
    n_sentences = texts.str.count_matches(r"[.!?]+(\s|$)").clip(lower_bound=1)
    words = texts.str.to_lowercase().str.extract_all(r"[a-z][a-z'-]*").list.head(100)
    return [
        n_words.alias("n_words"),
        n_sentences.alias("n_sentences"),
        (0.39 * n_words / n_sentences + 11.8 * _syllables(texts) / n_words - 15.59)
        .round(3)
        .alias("fk_grade"),
        (words.list.n_unique() / words.list.len().clip(lower_bound=1))
        .round(4)
        .alias("lexical_diversity"),
        texts.map_batches(_compression_ratio, return_dtype=pl.Float64)
        .round(4)
        .alias("compression_ratio"),
        texts.str.count_matches(TOKENS).alias("n_tokens"),
    ]


def _scaled(settings: ScoringSettings) -> pl.Expr:
    reliable = (pl.col("n_words") / 100).clip(upper_bound=1.0)
    scales = {
        "grade": (pl.col("fk_grade").clip(0, 18) / 18),
        "diversity": ((pl.col("lexical_diversity") - 0.4) / 0.5).clip(0, 1) * reliable,
        "compression": ((pl.col("compression_ratio") - 0.3) / 0.5).clip(0, 1) * reliable,
        "length": ((pl.col("n_tokens").clip(lower_bound=1).log10() - 1.3) / 2).clip(0, 1),
    }
    total = sum(settings.weights.values())
    return pl.sum_horizontal([scales[k] * w / total for k, w in settings.weights.items()]).round(5)


def score_docs(raw: pl.DataFrame, codex: ValueCodex, settings: ScoringSettings) -> pl.DataFrame:
    """Difficulty and value signals for each raw document (scored on the source text)."""
    text = pl.col("text")
    return (
        raw.lazy()
        .with_columns([*difficulty_signals(text), *value_signals(text, codex)])
        .with_columns(
            difficulty=_scaled(settings),
            is_dilemma=(pl.col("kind") == "dilemma")
            | ((pl.col("n_values") >= settings.dilemma_min_values) & text.str.contains(TENSION)),
            is_value_definition=(pl.col("kind") == "definition") & (pl.col("n_values") >= 1),
        )
        .select([pl.col(c).cast(t) for c, t in SCORE_SCHEMA.items()])
        .collect()
    )
