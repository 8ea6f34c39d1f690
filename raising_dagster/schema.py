"""The record schema of each stage, in one place."""

from __future__ import annotations

import polars as pl

from raising_dagster.teacher.base import LINEAGE_COLUMNS

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

# Lineage carried by every generated record: its source and how its text was made (one record
# type, teacher/base.py `Lineage`, shared with the generation cache).
LINEAGE_SCHEMA: dict[str, pl.DataType] = {
    "source_doc_id": pl.String(),
    "input_sha": pl.String(),
    **LINEAGE_COLUMNS,
}

REWRITE_SCHEMA: dict[str, pl.DataType] = {
    "doc_id": pl.String(),
    "shard": pl.String(),
    "kind": pl.String(),
    "title": pl.String(),
    "text": pl.String(),
    "values": pl.List(pl.String()),  # taught, strongest first
    "value_sources": pl.List(pl.String()),
    "topic_words": pl.List(pl.String()),
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
    "values": pl.List(pl.String()),  # taught, strongest first (stages/values.py weave_values)
    "value_sources": pl.List(pl.String()),  # `detected` or `assigned`, one per taught value
    "value_evidence": pl.String(),  # JSON: cue hits of a detected value, why one was assigned
    "detected_values": pl.List(pl.String()),  # what the source itself expresses
    "value_strengths": pl.String(),
    "n_values": pl.Int32(),  # detected values
    "topic_words": pl.List(pl.String()),
    "is_dilemma": pl.Boolean(),
    "is_value_definition": pl.Boolean(),
    "safety_flag": pl.String(),
}

# The Dagster run that wrote a per-shard file, added by the assets to every record of raw_docs,
# scored_docs and the framing stages (the lineage table of a publication links each training
# record to the run of each stage through it).
RUN_ID = "run_id"
STORED: dict[str, pl.DataType] = {RUN_ID: pl.String()}

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
    "value_sources",
    "detected_values",
    "value_evidence",
    "n_tokens",
    *[c for c in LINEAGE_SCHEMA if c != "source_doc_id"],
)

# Documents that repeat an earlier one (stages/dedup.py), with the kept one and how alike.
DUPLICATES_SCHEMA: dict[str, pl.DataType] = {
    "shard": pl.String(),
    "doc_id": pl.String(),
    "reason": pl.String(),  # exact_duplicate or near_duplicate
    "kept_shard": pl.String(),
    "kept_doc_id": pl.String(),
    "similarity": pl.Float64(),
}
