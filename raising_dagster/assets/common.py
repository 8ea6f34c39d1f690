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
    schema: Mapping[str, pl.DataType] | Path, rows: int, partitioned: bool = False
) -> dict[str, Any]:
    """Dagster's standard metadata of a materialization: `dagster/row_count` (the rows written by
    it: the partition's for a partitioned asset, also as `dagster/partition_row_count`) and
    `dagster/column_schema` (of a frame's schema, or of a Parquet file or glob)."""
    if isinstance(schema, Path):
        schema = pl.scan_parquet(schema).collect_schema()
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


def blocking_check(
    name: str, asset: str, partitions_def: PartitionsDefinition | None = None
) -> AssetCheckSpec:
    """A blocking check spec, partitioned like its asset (so the instance keeps each partition's
    latest result, which training_ready_corpus reads before it publishes)."""
    return AssetCheckSpec(name, asset=asset, blocking=True, partitions_def=partitions_def)
