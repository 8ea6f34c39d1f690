"""The three framing stages: first person, lived experience, social dialogue, through a Teacher."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from raising_dagster.config import ValueCodex, sha256_hex
from raising_dagster.schema import REWRITE_SCHEMA
from raising_dagster.stages.values import detect_values
from raising_dagster.teacher.base import Rewrite, RewriteRequest, Stage, Teacher, ValueRef


def stage_seed(seed: int, stage: Stage, doc_id: str) -> int:
    """A per-document, per-stage seed: stable across runs, machines and batch sizes."""
    return int(sha256_hex(f"{seed}:{stage}:{doc_id}")[:8], 16)


def _value_refs(codex: ValueCodex, names: list[str] | None) -> tuple[ValueRef, ...]:
    chosen = names or [codex.default_value]
    return tuple(ValueRef(n, codex.get(n).description) for n in chosen)


def _batches(frame: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    for offset in range(0, frame.height, size):
        yield frame.slice(offset, size)


def rewrite_docs(
    docs: pl.DataFrame,
    stage: Stage,
    teacher: Teacher,
    codex: ValueCodex,
    seed: int,
    batch_size: int = 256,
    source_texts: dict[str, str] | None = None,
) -> pl.DataFrame:
    """Rewrite every document of a frame (columns of REWRITE_SCHEMA, at least doc_id..values) for a
    stage. One output row per input row, in input order, with lineage."""
    outputs: list[Rewrite] = []
    for batch in _batches(docs, batch_size):
        requests = [
            RewriteRequest(
                doc_id=row["doc_id"],
                text=row["text"],
                kind=row["kind"],
                title=row["title"],
                values=_value_refs(codex, row["values"]),
                seed=stage_seed(seed, stage, row["doc_id"]),
                source_text=None if source_texts is None else source_texts[row["doc_id"]],
                safety_flag=row["safety_flag"],
            )
            for row in batch.iter_rows(named=True)
        ]
        outputs.extend(teacher.rewrite(stage, requests))
    if len(outputs) != docs.height:
        raise RuntimeError(f"teacher returned {len(outputs)} rewrites for {docs.height} documents")
    lineage = pl.DataFrame(
        {
            "text": [o.text for o in outputs],
            "teacher_backend": teacher.backend,
            "teacher_model": teacher.model,
            "prompt_id": [o.prompt_id for o in outputs],
            "prompt_sha": [o.prompt_sha for o in outputs],
            "sampling": [o.sampling for o in outputs],
            "seed": [o.seed for o in outputs],
            "cache_hit": [o.cache_hit for o in outputs],
            "attempts": [o.attempts for o in outputs],
            "fallback_reason": [o.fallback_reason for o in outputs],
        },
        schema_overrides={k: REWRITE_SCHEMA[k] for k in ("seed", "attempts", "fallback_reason")},
    )
    keep = docs.select("doc_id", "shard", "kind", "title", "values", "safety_flag", "source_doc_id")
    return pl.concat(
        [keep, lineage, docs.select(pl.col("text").map_batches(_sha_series).alias("input_sha"))],
        how="horizontal_extend",
    ).select(list(REWRITE_SCHEMA))


def _sha_series(texts: pl.Series) -> pl.Series:
    return pl.Series([sha256_hex(t) for t in texts], dtype=pl.String)


def first_person(
    raw: pl.DataFrame, teacher: Teacher, codex: ValueCodex, seed: int, batch_size: int = 256
) -> pl.DataFrame:
    """Every raw document framed as seen by the one persistent "I"."""
    docs = detect_values(raw, codex).with_columns(source_doc_id=pl.col("doc_id"))
    return rewrite_docs(docs, "first_person", teacher, codex, seed, batch_size)


def experiential(
    framed: pl.DataFrame, teacher: Teacher, codex: ValueCodex, seed: int, batch_size: int = 256
) -> pl.DataFrame:
    """The framed documents set in lived experience, with a reflection tying them to values."""
    return rewrite_docs(framed, "experiential", teacher, codex, seed, batch_size)


def social(
    experienced: pl.DataFrame,
    raw: pl.DataFrame,
    teacher: Teacher,
    codex: ValueCodex,
    seed: int,
    batch_size: int = 256,
) -> pl.DataFrame:
    """A scripted dialogue per document, in which the "I" talks with a recurring person."""
    source = dict(zip(raw["doc_id"], raw["text"], strict=True))
    missing = set(experienced["doc_id"]) - source.keys()
    if missing:
        raise ValueError(f"{len(missing)} documents have no raw text, e.g. {sorted(missing)[:3]}")
    return rewrite_docs(experienced, "social", teacher, codex, seed, batch_size, source)
