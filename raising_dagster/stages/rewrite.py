"""The three framing stages: first person, lived experience, social dialogue, through a Teacher.

Each stage's rules live in its task (stages/tasks/); here the documents of a shard become requests,
go to the teacher in batches, and come back as records with their lineage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import polars as pl

from raising_dagster.config import ValueCodex, sha256_hex
from raising_dagster.schema import REWRITE_SCHEMA
from raising_dagster.stages.tasks.social import selected_for_dialogue
from raising_dagster.teacher.base import (
    LINEAGE_FIELDS,
    Rewrite,
    RewriteRequest,
    Stage,
    Teacher,
    ValueRef,
)

BatchDone = Callable[[int], None]  # documents finished, after each batch
_CARRIED = ("values", "value_sources", "topic_words")


def stage_seed(seed: int, stage: Stage, doc_id: str) -> int:
    """A per-document, per-stage seed: stable across runs, machines and batch sizes."""
    return int(sha256_hex(f"{seed}:{stage}:{doc_id}")[:8], 16)


def _batches(frame: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    for offset in range(0, frame.height, size):
        yield frame.slice(offset, size)


def _request(row: dict, stage: Stage, codex: ValueCodex, seed: int) -> RewriteRequest:
    return RewriteRequest(
        doc_id=row["doc_id"],
        text=row["text"],
        kind=row["kind"],
        title=row["title"],
        values=tuple(ValueRef(n, codex.get(n).description) for n in row["values"]),
        seed=stage_seed(seed, stage, row["doc_id"]),
        source_text=row.get("source_text"),
        safety_flag=row["safety_flag"],
        topics=tuple(row["topic_words"] or ()),
    )


def rewrite_docs(
    docs: pl.DataFrame,
    stage: Stage,
    teacher: Teacher,
    codex: ValueCodex,
    seed: int,
    batch_size: int = 256,
    on_batch: BatchDone | None = None,
) -> pl.DataFrame:
    """Rewrite every document of a frame for a stage: one output row per input row, in input
    order, with lineage. `docs` holds doc_id, shard, kind, title, text, values, value_sources,
    topic_words, safety_flag, source_doc_id (and source_text for the social stage)."""
    outputs: list[Rewrite] = []
    for batch in _batches(docs, batch_size):
        requests = [_request(row, stage, codex, seed) for row in batch.iter_rows(named=True)]
        outputs.extend(teacher.rewrite(stage, requests))
        if on_batch is not None:
            on_batch(batch.height)
    if len(outputs) != docs.height:
        raise RuntimeError(f"teacher returned {len(outputs)} rewrites for {docs.height} documents")
    made = {"text": [o.text for o in outputs]} | {
        name: [getattr(o.lineage, name) for o in outputs] for name in LINEAGE_FIELDS
    }
    lineage = pl.DataFrame(made, schema={k: REWRITE_SCHEMA[k] for k in made})
    keep = docs.select(
        "doc_id", "shard", "kind", "title", *_CARRIED, "safety_flag", "source_doc_id"
    )
    return pl.concat(
        [keep, lineage, docs.select(pl.col("text").map_batches(_sha_series).alias("input_sha"))],
        how="horizontal",
        strict=True,  # one row each: equal heights, or an error
    ).select([pl.col(c).cast(t) for c, t in REWRITE_SCHEMA.items()])


def _sha_series(texts: pl.Series) -> pl.Series:
    return pl.Series([sha256_hex(t) for t in texts], dtype=pl.String)


def first_person(
    raw: pl.DataFrame,
    scored: pl.DataFrame,
    teacher: Teacher,
    codex: ValueCodex,
    seed: int,
    batch_size: int = 256,
    on_batch: BatchDone | None = None,
) -> pl.DataFrame:
    """Every raw document framed as seen by the one persistent "I"; the values each teaches and
    its topic words come from `scored` (stages/score.py)."""
    docs = raw.join(
        scored.select("doc_id", *_CARRIED), on="doc_id", how="left", validate="1:1"
    ).with_columns(source_doc_id=pl.col("doc_id"))
    missing = docs.filter(pl.col("values").is_null())
    if missing.height:
        example = missing["doc_id"].head(3).to_list()
        raise ValueError(f"{missing.height} documents have no scores, e.g. {example}")
    return rewrite_docs(docs, "first_person", teacher, codex, seed, batch_size, on_batch)


def experiential(
    framed: pl.DataFrame,
    teacher: Teacher,
    codex: ValueCodex,
    seed: int,
    batch_size: int = 256,
    on_batch: BatchDone | None = None,
) -> pl.DataFrame:
    """The framed documents set in lived experience, with a reflection on the values taught."""
    return rewrite_docs(framed, "experiential", teacher, codex, seed, batch_size, on_batch)


def dialogue_docs(experienced: pl.DataFrame, seed: int, social_share: float) -> pl.DataFrame:
    """The documents that also contribute a dialogue: a seeded `social_share` of them, never a
    safety-flagged one (its recontextualized experience is its only record)."""
    chosen = [selected_for_dialogue(d, seed, social_share) for d in experienced["doc_id"]]
    return experienced.filter(pl.Series(chosen, dtype=pl.Boolean) & pl.col("safety_flag").is_null())


def social(
    experienced: pl.DataFrame,
    raw: pl.DataFrame,
    teacher: Teacher,
    codex: ValueCodex,
    seed: int,
    social_share: float = 1.0,
    batch_size: int = 256,
    on_batch: BatchDone | None = None,
) -> pl.DataFrame:
    """A scripted dialogue for each document chosen for one (`dialogue_docs`), in which the "I"
    talks with a person of the identity card."""
    chosen = dialogue_docs(experienced, seed, social_share)
    docs = chosen.join(
        raw.select("doc_id", source_text="text"), on="doc_id", how="left", validate="1:1"
    )
    missing = docs.filter(pl.col("source_text").is_null())
    if missing.height:
        example = missing["doc_id"].head(3).to_list()
        raise ValueError(f"{missing.height} documents have no raw text, e.g. {example}")
    return rewrite_docs(docs, "social", teacher, codex, seed, batch_size, on_batch)


def teacher_summary(records: pl.DataFrame) -> dict[str, object]:
    """Who wrote a stage's records and how the LLM fared: records by writer, the share of the
    records given to an LLM whose own text was accepted, fallbacks by reason, mean grounding."""
    tried = records.filter(pl.col("tried_backend").is_not_null())
    accepted = tried.filter(pl.col("fallback_reason").is_null())
    writers = records.group_by("teacher_backend", "teacher_model").len().sort("teacher_backend")
    return {
        "records": records.height,
        "by_writer": {f"{b}/{m}": n for b, m, n in writers.iter_rows()},
        "llm_tried": tried.height,
        "llm_accepted": accepted.height,
        "llm_acceptance": round(accepted.height / tried.height, 4) if tried.height else None,
        "fallbacks_by_reason": dict(
            records.filter(pl.col("fallback_reason").is_not_null())
            .group_by("fallback_reason")
            .len()
            .sort("fallback_reason")
            .iter_rows()
        ),
        "mean_grounding": round(float(accepted["grounding"].mean() or 0.0), 3)
        if accepted.height
        else None,
    }
