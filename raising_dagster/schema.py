"""The record schema of each stage, in one place."""

from __future__ import annotations

import polars as pl

RAW_SCHEMA: dict[str, pl.DataType] = {
    "doc_id": pl.String(),
    "shard": pl.String(),
    "line": pl.Int64(),
    "title": pl.String(),
    "kind": pl.String(),
    "text": pl.String(),
    "meta": pl.String(),
    "input_sha": pl.String(),
    "normalized": pl.List(pl.String()),  # the normalization steps that changed the text
    "redactions": pl.List(pl.String()),  # one reason per redaction in the text and title
    "safety_flag": pl.String(),
}

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "shard": pl.String(),
    "line": pl.Int64(),
    "reason": pl.String(),
    "detail": pl.String(),
    "raw": pl.String(),
}

# Lineage carried by every generated record: which teacher, prompt and sampling made it.
LINEAGE_SCHEMA: dict[str, pl.DataType] = {
    "source_doc_id": pl.String(),
    "input_sha": pl.String(),
    "teacher_backend": pl.String(),
    "teacher_model": pl.String(),
    "prompt_id": pl.String(),
    "prompt_sha": pl.String(),
    "sampling": pl.String(),
    "seed": pl.Int64(),
    "cache_hit": pl.Boolean(),
    "attempts": pl.Int32(),
    "fallback_reason": pl.String(),
}

REWRITE_SCHEMA: dict[str, pl.DataType] = {
    "doc_id": pl.String(),
    "shard": pl.String(),
    "kind": pl.String(),
    "title": pl.String(),
    "text": pl.String(),
    "values": pl.List(pl.String()),
    "safety_flag": pl.String(),
    **LINEAGE_SCHEMA,
}

SCORE_SCHEMA: dict[str, pl.DataType] = {
    "doc_id": pl.String(),
    "shard": pl.String(),
    "kind": pl.String(),
    "n_words": pl.Int64(),
    "n_sentences": pl.Int64(),
    "fk_grade": pl.Float64(),
    "lexical_diversity": pl.Float64(),
    "rare_word_rate": pl.Float64(),
    "compression_ratio": pl.Float64(),
    "n_tokens": pl.Int64(),
    "score_flags": pl.List(pl.String()),  # why a signal was estimated or clamped (stages/score.py)
    "difficulty": pl.Float64(),
    "values": pl.List(pl.String()),
    "value_strengths": pl.String(),
    "n_values": pl.Int32(),
    "is_dilemma": pl.Boolean(),
    "is_value_definition": pl.Boolean(),
    "safety_flag": pl.String(),
}

TRAINING_COLUMNS: tuple[str, ...] = (
    "position",
    "stage",
    "stage_index",
    "variant",
    "text",
    "doc_id",
    "source_doc_id",
    "shard",
    "kind",
    "difficulty",
    "values",
    "n_tokens",
    *[c for c in LINEAGE_SCHEMA if c != "source_doc_id"],
)
