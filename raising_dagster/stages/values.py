"""Which codex values a text expresses, by cue matching (vectorized with Polars)."""

from __future__ import annotations

import polars as pl

from raising_dagster.config import ValueCodex

WORDS = r"[A-Za-z][A-Za-z'-]*"


def value_signals(texts: pl.Expr, codex: ValueCodex) -> list[pl.Expr]:
    """Columns `values` (names, strongest first, ties in codex order), `value_strengths`
    (JSON: cue hits per 100 words) and `n_values` for a text expression."""
    counts = {v.name: texts.str.count_matches(v.cue_pattern) for v in codex.values}
    n_words = texts.str.count_matches(WORDS).clip(lower_bound=1)
    strengths = pl.struct(
        [(c * 100.0 / n_words).round(3).alias(name) for name, c in counts.items()]
    ).struct.json_encode()
    hits = pl.concat_list([pl.struct(name=pl.lit(n), hits=c) for n, c in counts.items()])
    present = hits.list.eval(
        pl.element().sort_by(
            pl.element().struct.field("hits"), descending=True, maintain_order=True
        )
    ).list.eval(pl.element().filter(pl.element().struct.field("hits") > 0).struct.field("name"))
    return [
        present.alias("values"),
        strengths.alias("value_strengths"),
        present.list.len().cast(pl.Int32).alias("n_values"),
    ]


def detect_values(frame: pl.DataFrame, codex: ValueCodex, text_col: str = "text") -> pl.DataFrame:
    """The frame with value signal columns added."""
    return frame.with_columns(value_signals(pl.col(text_col), codex))
