"""Difficulty and value signals per document, vectorized in Polars.

Signals (each kept as a column) and the [0, 1] scale each is mapped to before weighting:
- `fk_grade`: Flesch-Kincaid grade, 0.39 * words/sentence + 11.8 * syllables/word - 15.59, with
  syllables approximated by vowel groups, minus a silent final e after a
  consonant (not -le); scale clip(grade, 0, 18) / 18.
- `lexical_diversity`: MTLD (McCarthy and Jarvis 2010; threshold 0.72, mean of the forward and
  backward passes); scale clip((mtld - 30) / 120, 0, 1). MTLD's resets are sequential: one
  compiled loop over a batch's words as integer ids (stages/mtld.py).
- `rare_word_rate`: share of words outside the ~5,000 most frequent English words
  (lexicons/common_words_en.txt); scale clip(rate / 0.4, 0, 1).
- `compression_ratio`: zlib-compressed bytes over raw bytes (redundant text compresses well);
  scale clip((ratio - 0.3) / 0.5, 0, 1).
- `n_tokens`: word and punctuation pieces; scale clip((log10(n) - 1.3) / 2, 0, 1)
  (20 -> 0, 2000 -> 1).
MTLD and compression ratio read high on any short text (nothing repeats yet), so both
scaled values are multiplied by min(1, words / 100): short texts count as simple on them.
`difficulty` is the weighted mean of the scaled signals with the configured weights.

Texts the formula was not made for are scored, never refused, and say so in `score_flags`:
- `non_latin_script` (most letters outside the Latin script): words are runs of letters and
  digits, each Han/Hiragana/Katakana character one word; sentences also end at the CJK,
  Arabic and Devanagari full stops and marks;
  syllables are taken as 1.5 per word (the English mean); rare words are those outside the
  English list (so nearly all). Without this, Cyrillic or Chinese text read as one word of no
  syllable: grade -15.
- `no_sentence_end` (more than 20 words and no sentence-ending punctuation: HTML, code, verse):
  the whole text counts as one sentence.
- `fk_grade_clamped`: the grade fell outside FK_GRADE_RANGE, [-3.4, 40] (-3.4 is one-syllable,
  one-word sentences; past 40 the grade says nothing more), and was clamped to it.
"""

from __future__ import annotations

import zlib

import polars as pl

from raising_dagster.config import CurriculumSettings, ScoringSettings, ValueCodex
from raising_dagster.schema import SCORE_SCHEMA
from raising_dagster.stages.lexicon import common_words
from raising_dagster.stages.values import (
    WORDS,
    weave_values,
    with_topic_words,
    with_value_signals,
)

TOKENS = r"\w+|[^\w\s]"
FK_GRADE_RANGE = (-3.4, 40.0)
MTLD_THRESHOLD = 0.72
LATIN_WORDS = r"[a-z][a-z'-]*"
# A CJK character is a word; elsewhere a run of letters, marks and digits.
SCRIPT_WORDS = r"[\p{Han}\p{Hiragana}\p{Katakana}]|[^\s\p{P}\p{S}\p{Han}\p{Hiragana}\p{Katakana}]+"
SENTENCE_ENDS = r"[.!?\u061f\u0964]+(\s|$)|[\u3002\uff01\uff1f]+"
_ROW = "_score_row"
TENSION = (
    r"(?i)\b(dilemma|torn between|on the other hand|at the cost of|should (she|he|they|i|we))\b"
)


def _compression_ratio(texts: pl.Series) -> pl.Series:
    ratios = []
    for text in texts:
        raw = text.encode()
        ratios.append(len(zlib.compress(raw, 6)) / max(len(raw), 1))
    return pl.Series(ratios, dtype=pl.Float64)


def _mtld_series(word_lists: pl.Series) -> pl.Series:
    from raising_dagster.stages.mtld import mtld_batch  # numba: imported when first scoring

    return mtld_batch(word_lists, MTLD_THRESHOLD)


def with_difficulty_signals(
    frame: pl.LazyFrame, texts: pl.Expr, latin: bool = True
) -> pl.LazyFrame:
    """The frame with the raw readability signals of `texts` (`latin=False`: the rules for other
    scripts in the module doc); `fk_grade` is clamped and `score_flags` says why. Each count and
    the word list are computed once, as columns, then combined."""
    parts = {
        "_words": texts.str.count_matches(WORDS if latin else SCRIPT_WORDS),
        "_word_list": texts.str.to_lowercase().str.extract_all(
            LATIN_WORDS if latin else SCRIPT_WORDS
        ),
        "_ends": texts.str.count_matches(SENTENCE_ENDS),
    }
    if latin:  # syllables by vowel groups, less a silent final e
        parts["_vowel_groups"] = texts.str.count_matches(r"(?i)[aeiouy]+")
        parts["_silent_e"] = texts.str.count_matches(r"(?i)[aeiouy][^aeiouy\s]*[^aeiouy\sl]e\b")
    n_words = pl.col("_words").clip(lower_bound=1)
    words = pl.col("_word_list")
    syllables = (
        (pl.col("_vowel_groups") - pl.col("_silent_e")).clip(lower_bound=pl.col("_words"))
        if latin
        else 1.5 * n_words
    )
    ends = pl.col("_ends")
    n_sentences = ends.clip(lower_bound=1)
    rare = words.list.eval(pl.element().is_in(common_words().implode()).not_()).list.mean()
    grade = 0.39 * n_words / n_sentences + 11.8 * syllables / n_words - 15.59
    flags = pl.concat_list(
        pl.lit(None if latin else "non_latin_script", dtype=pl.String),
        pl.when((ends == 0) & (n_words > 20)).then(pl.lit("no_sentence_end")),
        pl.when(~grade.is_between(*FK_GRADE_RANGE)).then(pl.lit("fk_grade_clamped")),
    ).list.drop_nulls()
    return (
        frame.with_columns(**parts)
        .with_columns(
            n_words.alias("n_words"),
            n_sentences.alias("n_sentences"),
            grade.clip(*FK_GRADE_RANGE).round(3).alias("fk_grade"),
            words.map_batches(_mtld_series, return_dtype=pl.Float64)
            .round(3)
            .alias("lexical_diversity"),
            rare.fill_null(0.0).round(4).alias("rare_word_rate"),
            texts.map_batches(_compression_ratio, return_dtype=pl.Float64)
            .round(4)
            .alias("compression_ratio"),
            texts.str.count_matches(TOKENS).alias("n_tokens"),
            flags.alias("score_flags"),
        )
        .drop(*parts)
    )


def _non_latin(texts: pl.Expr) -> pl.Expr:
    """Whether most letters of a text are outside the Latin script (ASCII texts never are)."""
    letters = texts.str.count_matches(r"\p{L}")
    return (letters > 0) & (texts.str.count_matches(r"\p{Latin}") * 2 < letters)


def _scaled(settings: ScoringSettings) -> pl.Expr:
    reliable = (pl.col("n_words") / 100).clip(upper_bound=1.0)
    scales = {
        "grade": (pl.col("fk_grade").clip(0, 18) / 18),
        "diversity": ((pl.col("lexical_diversity") - 30) / 120).clip(0, 1) * reliable,
        "rare": (pl.col("rare_word_rate") / 0.4).clip(0, 1),
        "compression": ((pl.col("compression_ratio") - 0.3) / 0.5).clip(0, 1) * reliable,
        "length": ((pl.col("n_tokens").clip(lower_bound=1).log10() - 1.3) / 2).clip(0, 1),
    }
    total = sum(settings.weights.values())
    return pl.sum_horizontal([scales[k] * w / total for k, w in settings.weights.items()]).round(5)


def score_docs(
    raw: pl.DataFrame,
    codex: ValueCodex,
    settings: ScoringSettings,
    curriculum: CurriculumSettings,
) -> pl.DataFrame:
    """Difficulty, detected values and topic words of each raw document (scored on the source
    text), and the values each will teach (stages/values.py `weave_values`)."""
    text = pl.col("text")
    rows = raw.lazy().with_row_index(_ROW)
    other = text.str.contains(r"[^\x00-\x7F]")
    scripts = pl.concat(
        [
            rows.filter(~other).with_columns(non_latin=pl.lit(False)),
            rows.filter(other).with_columns(non_latin=_non_latin(text)),
        ]
    )
    signals = pl.concat(
        [
            with_difficulty_signals(scripts.filter(~pl.col("non_latin")), text),
            with_difficulty_signals(scripts.filter(pl.col("non_latin")), text, latin=False),
        ]
    ).sort(_ROW)
    scored = (
        with_topic_words(
            with_value_signals(signals, text, codex, settings.value_words_per_hit),
            text,
            pl.col("title"),
        )
        .with_columns(
            difficulty=_scaled(settings),
            is_dilemma=(pl.col("kind") == "dilemma")
            | ((pl.col("n_values") >= settings.dilemma_min_values) & text.str.contains(TENSION)),
            is_value_definition=(pl.col("kind") == "definition") & (pl.col("n_values") >= 1),
        )
        .collect()
    )
    woven = weave_values(scored, codex, curriculum, curriculum.seed)
    return woven.select([pl.col(c).cast(t) for c, t in SCORE_SCHEMA.items()])
