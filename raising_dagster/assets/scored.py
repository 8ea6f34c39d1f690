"""`scored_docs`: difficulty and value signals per document of a shard."""

import polars as pl
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from raising_dagster.assets.common import (
    GROUP,
    POLARS_KINDS,
    blocking_check,
    check_result,
    preview,
    schema_metadata,
    table_metadata,
)
from raising_dagster.assets.raw import raw_docs
from raising_dagster.expectations.gx_suites import suite_outcome
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.schema import RUN_ID, SCORE_SCHEMA, STORED
from raising_dagster.stages.score import score_docs
from raising_dagster.store import write_parquet

SCORED_SUITE = "scored_docs_meet_expectation_suite"


@asset(
    group_name=GROUP,
    partitions_def=raw_shards,
    deps=[raw_docs],
    check_specs=[blocking_check(SCORED_SUITE, "scored_docs", raw_shards)],
    kinds=POLARS_KINDS,
    metadata=schema_metadata({**SCORE_SCHEMA, **STORED}),
)
def scored_docs(context: AssetExecutionContext, raising: RaisingResource) -> MaterializeResult:
    """Readability-based difficulty, the codex values each document expresses and the ones it
    will teach, and what it is about, for each document of a shard."""
    settings = raising.settings
    key = context.partition_key
    raw = pl.read_parquet(raising.layout.shard_file("raw_docs", key))
    scored = score_docs(raw, settings.codex, settings.scoring, settings.curriculum).with_columns(
        pl.lit(context.run.run_id, pl.String).alias(RUN_ID)
    )
    path = raising.layout.shard_file("scored_docs", key)
    write_parquet(scored, path)
    taught = scored.select(
        pl.col("values").explode(empty_as_null=True).drop_nulls().value_counts(sort=True)
    )
    sources = scored.select(pl.col("value_sources").list.first().value_counts(sort=True))
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
            "documents_per_taught_value": MetadataValue.json(
                {r["values"]: r["count"] for r in taught["values"].to_list()}
            ),
            "first_value_source": MetadataValue.json(
                {r["value_sources"]: r["count"] for r in sources["value_sources"].to_list()}
            ),
            "documents_with_detected_value": int((scored["n_values"] > 0).sum()),
            "path": MetadataValue.path(str(path)),
            "preview": preview(
                scored, ["doc_id", "kind", "difficulty", "detected_values", "values", "topic_words"]
            ),
        },
        check_results=[check_result(SCORED_SUITE, suite_outcome(scored, "scored_docs"))],
    )
