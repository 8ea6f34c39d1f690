"""The floor a user could write themselves: one lazy Polars pass from raw JSONL to an ordered
Parquet file, with the same kind of work (a first-person frame, a reflection naming the
strongest value, a dialogue over the sentences, Flesch-Kincaid, zlib ratio, value cue counts,
quantile stages, seeded in-stage shuffle). No quarantine, lineage, MTLD, checks or tokens.
Run: python floor_polars.py ROOT (reads ROOT/landing/*.jsonl); prints {"seconds": ...}."""

from __future__ import annotations

import json
import resource
import sys
import time
import zlib
from pathlib import Path

import polars as pl

from raising_dagster.config import load_codex


def _zlib_ratio(texts: pl.Series) -> pl.Series:
    return pl.Series([len(zlib.compress(t.encode(), 6)) / max(len(t.encode()), 1) for t in texts])


def run_floor(root: Path) -> None:
    start = time.perf_counter()
    codex = load_codex()
    text = pl.col("text")
    words = text.str.count_matches(r"[A-Za-z][A-Za-z'-]*").clip(lower_bound=1)
    sentences = text.str.count_matches(r"[.!?]+(\s|$)").clip(lower_bound=1)
    syllables = text.str.count_matches(r"(?i)[aeiouy]+")
    grade = 0.39 * words / sentences + 11.8 * syllables / words - 15.59
    hits = [text.str.count_matches(v.cue_pattern) for v in codex.values]
    values = sum((h > 0).cast(pl.Int32) for h in hits)
    strongest = pl.concat_list(hits).list.arg_max()
    names = pl.lit(pl.Series([f"{v.name}: {v.description}" for v in codex.values]).implode())
    difficulty = (grade.clip(0, 18) / 18) * 0.7 + text.map_batches(_zlib_ratio) * 0.3
    framed = pl.lit("Today I'm reading \"") + pl.col("title") + pl.lit('". Let\'s start: "') + text
    (
        pl.scan_ndjson(str(root / "landing" / "*.jsonl"))
        .with_columns(
            experiential=framed
            + pl.lit('"\n\nIt made me think about ')
            + names.list.get(strongest)
            + pl.lit("."),
            social=pl.lit("Mentor: ")
            + text.str.replace_all(r"([.!?])\s+", "$1\nI: Go on.\nMentor: ")
            + pl.lit("\nI: I understand."),
            difficulty=difficulty,
            n_values=values,
        )
        .with_columns(q=pl.col("difficulty").rank("ordinal") / pl.len())
        .with_columns(
            stage=pl.when(pl.col("q") <= 0.4).then(0).when(pl.col("q") <= 0.8).then(1).otherwise(2),
            shuffle=(pl.col("id") + "20250601").hash(seed=0),
        )
        .sort("stage", "shuffle")
        .with_row_index("position")
        .sink_parquet(root / "floor.parquet")
    )
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write(json.dumps({"seconds": seconds, "peak_mb": peak_mb}) + "\n")


if __name__ == "__main__":
    run_floor(Path(sys.argv[1]))
