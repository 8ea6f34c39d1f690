"""What every asset shares: group, kinds, code versions, Dagster's standard table metadata,
previews, check results."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetsDefinition,
    AssetSpec,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableRecord,
    TableSchema,
)

from raising_dagster.config import (
    TEACHER_TRANSPORT_FIELDS,
    RaisingSettings,
    model_sha,
    sha256_hex,
)
from raising_dagster.expectations.invariants import Markdown, Outcome
from raising_dagster.prompts import load_prompt
from raising_dagster.stages.order import VALUE_LINK
from raising_dagster.stages.tasks import TASKS
from raising_dagster.stages.tasks.experiential import RECONTEXTUALIZE_ID
from raising_dagster.storage import S3Path, scan_parquet

GROUP = "raising"
_PREVIEW_CHARS = 240
# Asset kinds (icons and filters in the Dagster catalog).
POLARS_KINDS = {"polars", "parquet"}
DUCKDB_KINDS = {"duckdb", "parquet"}
ROW_COUNT = "dagster/row_count"
PARTITION_ROW_COUNT = "dagster/partition_row_count"
COLUMN_SCHEMA = "dagster/column_schema"


def table_schema(
    schema: Mapping[str, pl.DataType], descriptions: Mapping[str, str] | None = None
) -> TableSchema:
    """Dagster's TableSchema of a Polars schema (type names as Polars writes them)."""
    return TableSchema(
        columns=[
            TableColumn(name, str(dtype), description=(descriptions or {}).get(name))
            for name, dtype in schema.items()
        ]
    )


def schema_metadata(schema: Mapping[str, pl.DataType]) -> dict[str, Any]:
    """Definition metadata: the column schema the catalog shows before any materialization."""
    return {COLUMN_SCHEMA: table_schema(schema)}


def table_metadata(
    schema: Mapping[str, pl.DataType] | Path | S3Path, rows: int, partitioned: bool = False
) -> dict[str, Any]:
    """Dagster's standard metadata of a materialization: `dagster/row_count` (the rows written by
    it: the partition's for a partitioned asset, also as `dagster/partition_row_count`) and
    `dagster/column_schema` (of a frame's schema, or of a Parquet file or glob, local or S3)."""
    if isinstance(schema, Path | S3Path):
        schema = scan_parquet(schema).collect_schema()
    metadata: dict[str, Any] = {
        ROW_COUNT: MetadataValue.int(rows),
        COLUMN_SCHEMA: MetadataValue.table_schema(table_schema(schema)),
    }
    if partitioned:
        metadata[PARTITION_ROW_COUNT] = MetadataValue.int(rows)
    return metadata


def _sha(*parts: object) -> str:
    return sha256_hex(json.dumps(parts, sort_keys=True, default=str))[:16]


def code_versions(settings: RaisingSettings) -> dict[str, str]:
    """Each asset's code version from what the run uses: the configured codex and identity card,
    the stage's templates and prompts, and the settings that shape its output; so the UI shows an
    asset stale when any of them changes (the user's own codex included)."""
    codex, identity = model_sha(settings.codex), model_sha(settings.identity)
    teacher = settings.teacher.model_dump(mode="json", exclude=set(TEACHER_TRANSPORT_FIELDS))
    versions = {
        "scored_docs": _sha(
            "score-v2",
            codex,
            settings.scoring.model_dump(mode="json"),
            settings.curriculum.model_dump(mode="json"),
        ),
        "ordered_docs": _sha(
            "order-v2",
            codex,
            identity,
            load_prompt(VALUE_LINK).sha,
            settings.curriculum.model_dump(mode="json"),
        ),
        "training_ready_corpus": _sha(
            "publish-v1",
            settings.tokenizer.model_dump(mode="json"),
            settings.curriculum.records_per_file,
        ),
    }
    for stage, task in TASKS.items():
        prompts = [
            load_prompt(task.template_id).sha,
            load_prompt(settings.teacher.prompt_id(stage)).sha,
        ]
        if stage == "experiential":
            prompts.append(load_prompt(RECONTEXTUALIZE_ID).sha)
        shaping = (
            [settings.curriculum.seed, settings.curriculum.social_share]
            if stage == "social"
            else [settings.curriculum.seed]
        )
        versions[f"{stage}_docs"] = _sha("frame-v2", codex, identity, prompts, teacher, shaping)
    return versions


def with_code_versions(
    assets: list[AssetsDefinition], settings: RaisingSettings
) -> list[AssetsDefinition]:
    """The assets with their code versions computed from `settings` (`code_versions`)."""
    versions = code_versions(settings)

    def versioned(spec: AssetSpec) -> AssetSpec:
        name = spec.key.to_user_string()
        return spec.replace_attributes(code_version=versions[name]) if name in versions else spec

    return [a.map_asset_specs(versioned) for a in assets]


def preview(frame: pl.DataFrame, columns: list[str], rows: int = 3) -> MetadataValue:
    """A markdown table of the first rows, long texts cut."""
    head = frame.head(rows).select(
        (pl.col(c).list.join(", ") if frame.schema[c] == pl.List(pl.String) else pl.col(c))
        .cast(pl.String)
        .str.slice(0, _PREVIEW_CHARS)
        .str.replace_all(r"[\n|]", " ")
        for c in columns
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in head.iter_rows()]
    return MetadataValue.md("\n".join(lines))


def table_value(rows: list[dict[str, Any]], columns: list[str]) -> MetadataValue:
    """Dagster's table metadata (shown inline in the UI, unlike long markdown): one record per
    row, values as plain strings, ints, floats or booleans (None as an empty string)."""

    def plain(value: Any) -> str | int | float | bool:
        if value is None:
            return ""
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value if isinstance(value, str | int | float | bool) else str(value)

    return MetadataValue.table(
        records=[TableRecord({c: plain(row.get(c)) for c in columns}) for row in rows],
        schema=TableSchema(columns=[TableColumn(c) for c in columns]),
    )


def frame_table(frame: pl.DataFrame, columns: list[str], rows: int = 5) -> MetadataValue:
    """The first rows of a frame as table metadata, long texts cut to an excerpt."""
    head = (
        frame.head(rows)
        .select(columns)
        .with_columns(
            pl.col(c).str.slice(0, _PREVIEW_CHARS).str.replace_all(r"\s+", " ")
            for c in columns
            if frame.schema[c] == pl.String
        )
    )
    return table_value(head.to_dicts(), columns)


def counts_by(frame: pl.DataFrame, column: str) -> dict[str, int]:
    """Rows per value of a column (nulls left out), sorted by value."""
    counts = frame.filter(pl.col(column).is_not_null()).group_by(column).len().sort(column)
    return dict(counts.iter_rows())


def check_result(
    name: str, outcome: Outcome, severity: AssetCheckSeverity = AssetCheckSeverity.ERROR
) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=name,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata={
            k: MetadataValue.md(v) if isinstance(v, Markdown) else v
            for k, v in outcome.metadata.items()
        },
    )


_SUITE = (
    "The {asset} records meet their Great Expectations suite (raising_dagster/expectations/"
    "{asset}.json: {what}); the failed expectations are listed with their why."
)
# What each blocking check asserts, shown with the check in the UI (README: Quality gates).
CHECK_DESCRIPTIONS = {
    "records_in_equal_kept_plus_quarantined": "Every record read from the shard is kept or "
    "quarantined with a reason: records in = kept + quarantined.",
    "raw_docs_meet_expectation_suite": _SUITE.format(
        asset="raw_docs", what="ids present and unique, texts non-empty and within length, kinds"
    ),
    "scored_docs_meet_expectation_suite": _SUITE.format(
        asset="scored_docs",
        what="difficulty and rare-word rate in [0, 1], MTLD >= 0, grade clamped, tokens >= 1",
    ),
    "every_record_framed_in_first_person": "At least checks.min_framed_share of the records "
    "open in the first person; the unframed ones are listed.",
    "first_person_docs_meet_expectation_suite": _SUITE.format(
        asset="first_person_docs", what="framing, lengths, lineage columns non-null"
    ),
    "every_record_has_first_person_reflection": "At least checks.min_framed_share of the "
    "records close with a first-person reflection; the others are listed.",
    "experiential_docs_meet_expectation_suite": _SUITE.format(
        asset="experiential_docs", what="reflection, lengths, lineage columns non-null"
    ),
    "every_record_is_dialogue_with_i_speaking": "At least checks.min_framed_share of the "
    'records are `Name: text` dialogues in which the "I" speaks; the others are listed.',
    "social_docs_meet_expectation_suite": _SUITE.format(
        asset="social_docs", what="dialogues of two turns or more, lengths, lineage non-null"
    ),
    "positions_contiguous_and_stages_non_decreasing": "Positions are 0..n-1; pacing time never "
    "goes back; with step pacing and no hold-back no record steps back to an earlier stage.",
    "each_stage_covers_each_value_at_min_share": "Each curriculum stage has at least the codex's "
    "min_share of records carrying each value; uncovered stage/value pairs are listed.",
    "stage_median_difficulty_rising": "The median difficulty strictly rises from each non-empty "
    "stage to the next.",
    "no_record_is_raw_text_without_framing": "No record equals or starts with its raw source "
    "text; every record is framed for its variant.",
    "every_record_traces_to_raw_doc_prompt_and_model": "Every record's source_doc_id is a raw "
    "document of its shard, and its prompt id, prompt hash, teacher backend and model are set.",
    "every_kept_doc_in_curriculum_or_excluded_with_reason": "Every kept raw document of the "
    "ordered shards is in the curriculum or listed in ordered_docs/exclusions.parquet with a "
    "reason; pending shards are named.",
    "ordered_docs_meet_expectation_suite": _SUITE.format(
        asset="ordered_docs", what="stages, variants, positions unique and contiguous, lineage"
    ),
    "quarantined_share_within_limit": "Quarantined records over records in, across the "
    "published shards, is at most checks.max_quarantined_share; the most quarantined shards "
    "are listed.",
}


def blocking_check(
    name: str, asset: str, partitions_def: PartitionsDefinition | None = None
) -> AssetCheckSpec:
    """A blocking check spec with its description (CHECK_DESCRIPTIONS), partitioned like its
    asset (so the instance keeps each partition's latest result, which training_ready_corpus
    reads before it publishes)."""
    return AssetCheckSpec(
        name,
        asset=asset,
        blocking=True,
        partitions_def=partitions_def,
        description=CHECK_DESCRIPTIONS[name],
    )
