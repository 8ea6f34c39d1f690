"""Which codex values a text expresses (detection), what a document is about (topic words), and
which values each record teaches (weaving): vectorized with Polars, no Dagster.

Detection: each value's cues (whole words or phrases, `x*` for any ending) are counted after its
`not_cues` (look-alike uses such as "kind of", "lie down") are blanked out. A value is detected when
its hits reach `max(1, words // words_per_hit)`: one cue is enough in a short text, a long one needs
more than a passing mention. `value_strengths` keeps the hits per 100 words of every value.

Weaving: a record teaches its detected values (strongest first, at most the codex's
`max_taught_values`); a document that expresses none is *assigned* one, so the curriculum carries
the codex from the first token whatever the corpus. Within a shard, documents are placed in
provisional stages by the shard's own difficulty quantiles; in each, the values still short of
their `min_share` are assigned first, then the least-taught ones, to documents taken in a seeded
order that rotates through kinds. The curriculum (stages/order.py) tops up what is still short
once the corpus-wide stages are known, so each stage meets its minimum by construction.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from raising_dagster.config import CurriculumSettings, ValueCodex, sha256_hex
from raising_dagster.stages.lexicon import stopwords

WORDS = r"[A-Za-z][A-Za-z'-]*"
TOPIC_WORD = r"\p{L}[\p{L}'-]{3,}"
TOPIC_WORDS = 3


def cue_hits(texts: pl.Expr, codex: ValueCodex) -> dict[str, pl.Expr]:
    """Per value, the number of cue matches in each text (look-alike uses blanked first)."""
    hits = {}
    for value in codex.values:
        source = texts
        if value.not_cue_pattern is not None:
            source = texts.str.replace_all(value.not_cue_pattern, " ")
        hits[value.name] = source.str.count_matches(value.cue_pattern)
    return hits


def with_value_signals(
    frame: pl.LazyFrame, texts: pl.Expr, codex: ValueCodex, words_per_hit: int = 400
) -> pl.LazyFrame:
    """The frame with columns `detected_values` (names, strongest first, ties in codex order),
    `value_strengths` (JSON: cue hits per 100 words of every value) and `n_values`.

    Each value's cues are counted once, into a column; the ranking of the values a text reaches
    is one vectorized sort over those counts (`_ranked_values`)."""
    hit_columns = [f"_cue_hits_{i}" for i in range(len(codex.values))]
    counts = cue_hits(texts, codex)
    frame = frame.with_columns(
        *[c.alias(column) for column, c in zip(hit_columns, counts.values(), strict=True)],
        _value_words=texts.str.count_matches(WORDS).clip(lower_bound=1),
    )
    n_words = pl.col("_value_words")
    needed = (n_words // words_per_hit).clip(lower_bound=1)
    strengths = pl.struct(
        [
            (pl.col(column) * 100.0 / n_words).round(3).alias(name)
            for column, name in zip(hit_columns, counts, strict=True)
        ]
    ).struct.json_encode()
    names = tuple(counts)
    detected = pl.struct(*hit_columns, needed.alias("_needed")).map_batches(
        lambda hits: _ranked_values(hits, names), return_dtype=pl.List(pl.String)
    )
    return (
        frame.with_columns(detected_values=detected, value_strengths=strengths)
        .with_columns(n_values=pl.col("detected_values").list.len().cast(pl.Int32))
        .drop(*hit_columns, "_value_words")
    )


def _ranked_values(hits: pl.Series, names: tuple[str, ...]) -> pl.Series:
    """Per row of a struct of cue counts (one field per value, in codex order, then `_needed`):
    the names of the values whose count reaches `_needed`, highest count first, ties in codex
    order (a stable sort)."""
    fields = hits.struct.unnest()
    counts = (
        fields.drop("_needed")
        .fill_null(0)
        .to_numpy()
        .astype(np.int64)
        .reshape(fields.height, len(names))
    )
    needed = fields["_needed"].fill_null(np.iinfo(np.int64).max).to_numpy().astype(np.int64)
    reached = np.where(counts >= needed[:, None], counts, 0)
    order = np.argsort(-reached, axis=1, kind="stable")
    kept = np.take_along_axis(reached, order, axis=1) > 0  # a prefix of each sorted row
    offsets = np.zeros(fields.height + 1, dtype=np.int64)
    np.cumsum(kept.sum(axis=1), out=offsets[1:])
    flat = pa.array(np.asarray(names, dtype=object)[order[kept]].tolist(), type=pa.large_string())
    ranked = pl.from_arrow(pa.LargeListArray.from_arrays(pa.array(offsets), flat))
    return ranked.cast(pl.List(pl.String)).alias(hits.name)


def detect_values(
    frame: pl.DataFrame, codex: ValueCodex, text_col: str = "text", words_per_hit: int = 400
) -> pl.DataFrame:
    """The frame with value signal columns added (`with_value_signals`)."""
    return with_value_signals(frame.lazy(), pl.col(text_col), codex, words_per_hit).collect()


def _words(texts: pl.Expr) -> pl.Expr:
    """Lowercase candidate topic words of each text (None counts as empty)."""
    return (
        texts.fill_null("")
        .str.to_lowercase()
        .str.extract_all(TOPIC_WORD)
        .list.eval(pl.element().str.strip_chars("'-"))
    )


def with_topic_words(
    frame: pl.LazyFrame, texts: pl.Expr, titles: pl.Expr, n: int = TOPIC_WORDS
) -> pl.LazyFrame:
    """The frame with `topic_words`: up to `n` words each document is about, its most repeated
    words of 4+ letters that are not stopwords (lexicons/stopwords_en.txt), title words first,
    ties by first appearance.

    Ranked on the words exploded to one row each and grouped per document, not inside
    `list.eval`: there Polars 1.44 misaligns `sort_by(unique_counts())` after an empty list and
    gave documents words of their neighbours."""
    row, word, at = "__topic_row", "__topic_word", "__topic_at"
    indexed = frame.with_row_index(row)

    def exploded(words: pl.Expr) -> pl.LazyFrame:
        return (
            indexed.select(row, words.alias(word))
            .explode(word, empty_as_null=True)
            .drop_nulls(word)
            .with_columns(pl.int_range(pl.len()).over(row).alias(at))
        )

    body = exploded(_words(pl.concat_str([titles.fill_null(""), texts], separator=" \n ")))
    counted = (
        body.filter(
            ~pl.col(word).is_in(stopwords().implode()) & (pl.col(word).str.len_chars() >= 4)
        )
        .group_by(row, word)
        .agg(pl.len().alias("count"), pl.col(at).min().alias("first"))
    )
    in_title = exploded(_words(titles)).group_by(row, word).agg(pl.col(at).min().alias("title_at"))
    ranked = (
        counted.join(in_title, on=[row, word], how="left")
        .sort(
            [row, "title_at", "count", "first"],
            descending=[False, False, True, False],
            nulls_last=True,
        )
        .group_by(row, maintain_order=True)
        .agg(pl.col(word).head(n).alias("topic_words"))
    )
    return (
        indexed.join(ranked, on=row, how="left")
        .sort(row)
        .with_columns(pl.col("topic_words").fill_null(pl.lit([], pl.List(pl.String))))
        .drop(row)
    )


def provisional_stage(
    difficulty: pl.Expr, is_dilemma: pl.Expr, curriculum: CurriculumSettings
) -> pl.Expr:
    """A shard-local guess of the curriculum stage: the shard's own difficulty quantile against
    the stages' quantiles, raised to the dilemma stage for dilemmas (stages/order.py decides)."""
    quantile = difficulty.rank("ordinal") / difficulty.len()
    stage = pl.lit(len(curriculum.stages) - 1)
    for index, s in reversed(list(enumerate(curriculum.stages))):
        stage = pl.when(quantile <= s.max_difficulty_quantile).then(pl.lit(index)).otherwise(stage)
    if curriculum.dilemma_stage is not None:
        dilemma = curriculum.stage_names.index(curriculum.dilemma_stage)
        stage = pl.when(is_dilemma).then(pl.max_horizontal(stage, pl.lit(dilemma))).otherwise(stage)
    return stage.cast(pl.Int32)


def _rotation_order(docs: list[dict], seed: int) -> list[dict]:
    """Documents in a seeded order that takes one of each kind in turn."""
    by_kind: dict[str, list[dict]] = {}
    for doc in sorted(
        docs, key=lambda d: sha256_hex(f"{seed}:weave:{d.get('shard')}/{d['doc_id']}")
    ):
        by_kind.setdefault(doc["kind"], []).append(doc)
    kinds = sorted(by_kind, key=lambda k: sha256_hex(f"{seed}:kind:{k}"))
    ordered: list[dict] = []
    while any(by_kind.values()):
        ordered.extend(by_kind[kind].pop(0) for kind in kinds if by_kind[kind])
    return ordered


def weave_values(
    scored: pl.DataFrame, codex: ValueCodex, curriculum: CurriculumSettings, seed: int
) -> pl.DataFrame:
    """Add the taught values of each document of a shard: `values` (taught, strongest first),
    `value_sources` (`detected` or `assigned`, one per taught value) and `value_evidence` (JSON:
    cue hits of each detected value, or why a value was assigned).

    `scored` needs doc_id, kind, difficulty, is_dilemma, detected_values and value_strengths."""
    stage_names = curriculum.stage_names
    limit = codex.max_taught_values
    frame = scored.with_columns(
        _stage=provisional_stage(pl.col("difficulty"), pl.col("is_dilemma"), curriculum)
    )
    taught: dict[str, list[str]] = {}
    sources: dict[str, list[str]] = {}
    evidence: dict[str, dict[str, object]] = {}
    for row in frame.select("doc_id", "detected_values", "value_strengths").iter_rows(named=True):
        strengths = json.loads(row["value_strengths"])
        names = list(row["detected_values"])[:limit]
        taught[row["doc_id"]] = names
        sources[row["doc_id"]] = ["detected"] * len(names)
        evidence[row["doc_id"]] = {
            n: {"source": "detected", "hits_per_100_words": strengths[n]} for n in names
        }
    for stage_index in range(len(stage_names)):
        docs = frame.filter(pl.col("_stage") == stage_index).select("doc_id", "kind").to_dicts()
        if not docs:
            continue
        stage = stage_names[stage_index]
        shares = codex.stage_min_shares(stage)
        counts = Counter(v for d in docs for v in taught[d["doc_id"]])
        need = {v: max(0, math.ceil(share * len(docs)) - counts[v]) for v, share in shares.items()}
        open_docs = [d for d in docs if not taught[d["doc_id"]]]
        # a second pass over documents that teach fewer values than allowed, for what is still short
        open_docs += [d for d in docs if 0 < len(taught[d["doc_id"]]) < limit]
        for doc in _rotation_order(open_docs, seed):
            doc_values = taught[doc["doc_id"]]
            short = [v for v in codex.names if need.get(v, 0) > 0 and v not in doc_values]
            if doc_values and not short:
                continue  # documents with a detected value only take what a stage is short of
            pool = short or [v for v in codex.names if v not in doc_values]
            rotation = int(sha256_hex(f"{seed}:assign:{doc['doc_id']}")[:8], 16)
            choice = min(
                pool,
                key=lambda v: (-need.get(v, 0), counts[v], (codex.names.index(v) - rotation) % 97),
            )
            why = (
                f"provisional stage {stage} short of {choice} "
                f"({counts[choice]} of {len(docs)} documents, min_share {shares[choice]})"
                if need.get(choice, 0) > 0
                else "no value cue in the text; the least-taught value of its provisional stage"
            )
            doc_values.append(choice)
            sources[doc["doc_id"]].append("assigned")
            evidence[doc["doc_id"]][choice] = {"source": "assigned", "why": why}
            counts[choice] += 1
            if need.get(choice, 0) > 0:
                need[choice] -= 1
    ids = frame["doc_id"].to_list()
    return scored.with_columns(
        values=pl.Series([taught[i] for i in ids], dtype=pl.List(pl.String)),
        value_sources=pl.Series([sources[i] for i in ids], dtype=pl.List(pl.String)),
        value_evidence=pl.Series(
            [json.dumps(evidence[i], sort_keys=True) for i in ids], dtype=pl.String
        ),
    )


def top_up_values(
    keys: pl.DataFrame, codex: ValueCodex, stage_names: list[str], seed: int
) -> tuple[pl.DataFrame, list[str]]:
    """Make every curriculum stage meet each value's `min_share` of its records, now that the
    corpus-wide stages are known: documents of a stage short of a value, teaching fewer than
    `max_taught_values`, are added that value (seeded, rotating through kinds). Returns the keys
    with `values`, `value_sources`, `value_evidence` updated and `added_value` (the value added,
    or null), and a line for each stage the codex cannot be met in, saying why.

    `keys` holds doc_id, shard, kind, stage_index, values, value_sources, value_evidence and
    `records` (the records the document contributes to its stage: 0, 1 or 2)."""
    rows, problems = top_up_rows(keys, codex, stage_names, seed)
    changed = [i for i, r in enumerate(rows) if r["added_value"] is not None]
    patched = ("values", "value_sources", "value_evidence", "added_value")
    patch = pl.DataFrame(
        {"_row": changed, **{c: [rows[i][c] for i in changed] for c in patched}},
        schema={"_row": pl.UInt32, **{c: keys.schema.get(c, pl.String()) for c in patched}},
    )
    # only the changed rows are rebuilt from Python objects; the rest keep their columns
    woven = (
        keys.with_row_index("_row")
        .join(patch, on="_row", how="left", suffix="_new", maintain_order="left")
        .with_columns(pl.coalesce(f"{c}_new", c).alias(c) for c in patched[:-1])
    )
    return woven.select(*keys.columns, "added_value"), problems


def top_up_rows(
    keys: pl.DataFrame, codex: ValueCodex, stage_names: list[str], seed: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """`top_up_values` as rows: every key row as a dict, with `added_value`."""
    limit = codex.max_taught_values
    rows = [{**r, "added_value": None} for r in keys.to_dicts()]
    problems: list[str] = []
    for stage_index, stage in enumerate(stage_names):
        docs = [r for r in rows if r["stage_index"] == stage_index and r["records"] > 0]
        shares = codex.stage_min_shares(stage)
        total = sum(d["records"] for d in docs)
        if sum(shares.values()) > limit:
            problems.append(
                f"stage {stage}: the codex's min shares add up to {sum(shares.values()):.2f}, "
                f"more than a record can teach (max_taught_values {limit})"
            )
            continue
        if not total:
            continue
        slots = sum(math.ceil(share * total) for share in shares.values())
        if slots > total * limit:
            problems.append(
                f"stage {stage}: its {total} records can teach at most {total * limit} values "
                f"(max_taught_values {limit}), but the codex's min shares need {slots}"
            )
            continue
        have = Counter()
        for d in docs:
            for v in set(d["values"]):
                have[v] += d["records"]
        floor = {v: math.ceil(share * total) for v, share in shares.items()}
        need = {v: floor[v] - have[v] for v in shares}
        for value in sorted(need, key=lambda v: (-need[v], codex.names.index(v))):
            if need[value] <= 0:
                continue
            eligible = [d for d in docs if value not in d["values"] and d["added_value"] is None]
            free = [d for d in eligible if len(d["values"]) < limit]
            full = [d for d in eligible if len(d["values"]) >= limit]
            for doc in [*_rotation_order(free, seed), *_rotation_order(full, seed)]:
                if need[value] <= 0:
                    break
                why = (
                    f"curriculum top-up: stage {stage} short of {value} "
                    f"({have[value]} of {total} records, min_share {shares[value]})"
                )
                if len(doc["values"]) >= limit:
                    # teach the value instead of the weakest one this stage has to spare
                    spare = [
                        w for w in doc["values"][1:] if have[w] - doc["records"] >= floor.get(w, 0)
                    ]
                    if not spare:
                        continue
                    dropped = spare[-1]
                    keep = [i for i, w in enumerate(doc["values"]) if w != dropped]
                    doc["values"] = [doc["values"][i] for i in keep]
                    doc["value_sources"] = [doc["value_sources"][i] for i in keep]
                    have[dropped] -= doc["records"]
                    need[dropped] = floor.get(dropped, 0) - have[dropped]
                    why += f", taught instead of {dropped}, which the stage has to spare"
                doc["values"] = [*doc["values"], value]
                doc["value_sources"] = [*doc["value_sources"], "assigned"]
                evidence = json.loads(doc["value_evidence"] or "{}")
                evidence[value] = {"source": "assigned", "why": why}
                doc["value_evidence"] = json.dumps(evidence, sort_keys=True)
                doc["added_value"] = value
                have[value] += doc["records"]
                need[value] -= doc["records"]
            if need[value] > 0:
                problems.append(
                    f"stage {stage}: {value} reaches {have[value]} of {total} records, short of "
                    f"min_share {shares[value]}: no other record can take it without leaving "
                    f"another value short (each teaches at most {limit})"
                )
    return rows, problems
