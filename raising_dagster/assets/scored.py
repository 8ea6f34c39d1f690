"""`scored_docs`: difficulty and value signals per document of a shard."""

import polars as pl
from dagster import AssetExecutionContext, BackfillPolicy, MaterializeResult, MetadataValue, asset

from raising_dagster.assets.common import (
    GROUP,
    POLARS_KINDS,
    blocking_check,
    check_result,
    preview,
    schema_metadata,
    stage_code_version,
    table_metadata,
)
from raising_dagster.assets.framing import social_docs
from raising_dagster.assets.raw import raw_docs
from raising_dagster.expectations.gx_suites import suite_outcome
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.schema import SCORE_SCHEMA
from raising_dagster.stages.score import score_docs
from raising_dagster.store import write_parquet

SCORED_SUITE = "scored_docs_meet_expectation_suite"


@asset(
    group_name=GROUP,
    partitions_def=raw_shards,
    deps=[social_docs, raw_docs],
    backfill_policy=BackfillPolicy.multi_run(1),
    check_specs=[blocking_check(SCORED_SUITE, "scored_docs", raw_shards)],
    code_version=stage_code_version(),
    kinds=POLARS_KINDS,
    metadata=schema_metadata(SCORE_SCHEMA),
)
def scored_docs(context: AssetExecutionContext, raising: RaisingResource) -> MaterializeResult:
    """Readability-based difficulty and codex value signals for each document of a shard."""
    settings = raising.settings
    key = context.partition_key
    raw = pl.read_parquet(raising.layout.shard_file("raw_docs", key))
    scored = score_docs(raw, settings.codex, settings.scoring)
    path = raising.layout.shard_file("scored_docs", key)
    write_parquet(scored, path)
    values = scored.select(
        pl.col("values").explode(empty_as_null=True).drop_nulls().value_counts(sort=True)
    )
    return MaterializeResult(
        metadata={
            **table_metadata(scored.schema, scored.height, partitioned=True),
            "records": scored.height,
            "difficulty_mean": float(scored["difficulty"].mean() or 0.0),
            "difficulty_quantiles": MetadataValue.json(
                {
                    f"p{q}": float(scored["difficulty"].quantile(q / 100) or 0.0)
                    for q in (10, 50, 90)
                }
            ),
            "dilemmas": int(scored["is_dilemma"].sum()),
            "value_definitions": int(scored["is_value_definition"].sum()),
            "documents_per_value": MetadataValue.json(
                {r["values"]: r["count"] for r in values["values"].to_list()}
            ),
            "path": MetadataValue.path(str(path)),
            "preview": preview(scored, ["doc_id", "kind", "fk_grade", "difficulty", "values"]),
        },
        check_results=[check_result(SCORED_SUITE, suite_outcome(scored, "scored_docs"))],
    )
