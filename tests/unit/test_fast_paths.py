"""Each fast path of issue 12 gives exactly what the plain code it replaces gives, on real text
(tests/data/real_corpus: other scripts, control characters, long documentation pages) and on
synthetic documents."""

import re
from pathlib import Path

import polars as pl
import pytest

from raising_dagster.config import ValueCodex, load_codex
from raising_dagster.stages.ingest import read_shard
from raising_dagster.stages.mtld import mtld, mtld_batch
from raising_dagster.stages.score import LATIN_WORDS, MTLD_THRESHOLD, SCRIPT_WORDS
from raising_dagster.stages.synth import synth_docs
from raising_dagster.stages.tasks.social import sentences_of
from raising_dagster.stages.values import WORDS, cue_hits, detect_values, top_up_rows, top_up_values

CORPUS = Path(__file__).resolve().parent.parent / "data" / "real_corpus"


@pytest.fixture(scope="module")
def real_texts() -> pl.Series:
    shards = sorted(CORPUS.glob("shard-*.jsonl.gz"))
    texts = pl.concat([read_shard(path).docs["text"] for path in shards])
    synthetic = [d["text"] for d in synth_docs(200, seed=5, mean_words=400)]
    return pl.concat([texts, pl.Series("text", [*synthetic, "", "word", "a a a a a"])])


@pytest.mark.parametrize("pattern", [LATIN_WORDS, SCRIPT_WORDS])
def test_compiled_mtld_equals_the_loop_on_real_text(real_texts: pl.Series, pattern: str) -> None:
    lists = real_texts.str.to_lowercase().str.extract_all(pattern)
    expected = [mtld(words, MTLD_THRESHOLD) for words in lists.to_list()]
    got = mtld_batch(lists, MTLD_THRESHOLD).to_list()
    assert len(got) == len(expected) > 2000
    assert max(abs(g - e) for g, e in zip(got, expected, strict=True)) <= 1e-9
    assert got == expected  # the same arithmetic: bit for bit
    # a slice (Polars hands map_batches chunks) gives the same values as the whole
    assert mtld_batch(lists.slice(100, 50), MTLD_THRESHOLD).to_list() == expected[100:150]


def _ranked_by_list_eval(texts: pl.Expr, codex: ValueCodex, words_per_hit: int) -> pl.Expr:
    """The value ranking as it was written before (a sort inside each row's list): the
    reference `with_value_signals` must agree with."""
    counts = cue_hits(texts, codex)
    n_words = texts.str.count_matches(WORDS).clip(lower_bound=1)
    needed = (n_words // words_per_hit).clip(lower_bound=1)
    hits = pl.concat_list(
        [
            pl.struct(name=pl.lit(n), hits=pl.when(c >= needed).then(c).otherwise(0))
            for n, c in counts.items()
        ]
    )
    return hits.list.eval(
        pl.element().sort_by(
            pl.element().struct.field("hits"), descending=True, maintain_order=True
        )
    ).list.eval(pl.element().filter(pl.element().struct.field("hits") > 0).struct.field("name"))


@pytest.mark.parametrize("words_per_hit", [400, 20])
def test_vectorized_value_ranking_equals_the_list_sort(
    real_texts: pl.Series, words_per_hit: int
) -> None:
    codex = load_codex()
    ties = [
        "Be honest, be kind, be fair and brave.",  # four values, one hit each: codex order
        "Kindness and kind help; a brave act; an honest, truthful answer.",
        "Courage. " * 30 + "Honesty and truth.",
    ]
    frame = pl.DataFrame({"text": [*real_texts, *ties]}).with_row_index("row")
    found = detect_values(frame, codex, words_per_hit=words_per_hit)
    expected = frame.select(
        _ranked_by_list_eval(pl.col("text"), codex, words_per_hit).alias("ranked")
    )["ranked"].to_list()
    assert found["detected_values"].to_list() == expected
    assert found["n_values"].to_list() == [len(v) for v in expected]
    assert found["detected_values"].list.len().max() >= 4  # ties and several values occur
    assert found.columns == ["row", "text", "detected_values", "value_strengths", "n_values"]


def test_top_up_patches_only_changed_rows_into_the_same_frame() -> None:
    codex = load_codex()
    names = codex.names
    keys = pl.DataFrame(
        {
            "doc_id": [f"d{i:03d}" for i in range(300)],
            "shard": ["a", "b", "c"] * 100,
            "kind": ["story", "news", "fable", "essay", "dilemma"] * 60,
            "stage_index": [i % 3 for i in range(300)],
            "values": [
                [names[i % 3], names[(i + 1) % 3]] if i % 7 == 0 else [] for i in range(300)
            ],
            "value_sources": [["detected", "detected"] if i % 7 == 0 else [] for i in range(300)],
            "value_evidence": ['{"x": 1}' if i % 5 else None for i in range(300)],
            "topic_words": [["river", "mill"]] * 300,
            "records": [i % 3 for i in range(300)],
        },
        schema_overrides={"stage_index": pl.Int32, "records": pl.Int32},
    )
    woven, problems = top_up_values(keys, codex, ["foundations", "examples", "dilemmas"], 7)
    rows, same_problems = top_up_rows(keys, codex, ["foundations", "examples", "dilemmas"], 7)
    expected = pl.DataFrame(rows, schema={**keys.schema, "added_value": pl.String()})
    assert woven.equals(expected) and woven.schema == expected.schema
    assert problems == same_problems
    assert 0 < woven["added_value"].is_not_null().sum() < woven.height


def test_sentences_split_as_the_lookbehind_pattern_split_them(real_texts: pl.Series) -> None:
    pattern = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+")  # the split it replaces
    odd = ['He said "Stop." Then left.', "Wow!! (Really?) Yes.)) No", "a.) b", "x. \u00a0 y"]
    for text in [*real_texts.to_list(), *odd]:
        expected = [s for s in pattern.split(" ".join(text.split())) if s]
        assert sentences_of(text) == expected, text[:200]
