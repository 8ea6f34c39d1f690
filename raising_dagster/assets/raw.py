"""`raw_docs`: one raw shard read into documents; unreadable records quarantined with a reason."""

import polars as pl
from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from raising_dagster.assets.common import (
    GROUP,
    POLARS_KINDS,
    blocking_check,
    check_result,
    counts_by,
    frame_table,
    preview,
    schema_metadata,
    table_metadata,
)
from raising_dagster.expectations.gx_suites import suite_outcome
from raising_dagster.expectations.invariants import records_conserved
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.schema import RAW_SCHEMA, RUN_ID, STORED
from raising_dagster.stages.ingest import find_shard, read_shard
from raising_dagster.storage import S3Path
from raising_dagster.store import write_json, write_parquet

RECORDS_CONSERVED = "records_in_equal_kept_plus_quarantined"
RAW_SUITE = "raw_docs_meet_expectation_suite"
QUARANTINE_PREVIEW = 10  # quarantined lines shown in the metadata (all in quarantine_path)


@asset(
    group_name=GROUP,
    partitions_def=raw_shards,
    check_specs=[
        blocking_check(RECORDS_CONSERVED, "raw_docs", raw_shards),
        blocking_check(RAW_SUITE, "raw_docs", raw_shards),
    ],
    code_version="ingest-v2",
    kinds=POLARS_KINDS,
    metadata=schema_metadata({**RAW_SCHEMA, **STORED}),
)
def raw_docs(context: AssetExecutionContext, raising: RaisingResource) -> MaterializeResult:
    """Documents of one raw shard (JSONL(.gz/.zst), Parquet or .txt); bad records quarantined."""
    key = context.partition_key
    layout = raising.layout
    settings = raising.settings
    shard = find_shard(settings.landing_dir, key)
    # an S3 object's ETag as listed, before it is read: the sensor compares it with its cursor
    etag = shard.etag if isinstance(shard, S3Path) else None
    read = read_shard(shard, settings.ingest)
    if read.file_error:
        context.log.warning("shard %s has no readable record: %s", key, read.file_error)
    docs = read.docs.with_columns(pl.lit(context.run.run_id, pl.String).alias(RUN_ID))
    write_parquet(docs, layout.shard_file("raw_docs", key))
    write_parquet(read.quarantine, layout.quarantine_file(key))
    by_reason = counts_by(read.quarantine, "reason")
    normalized = counts_by(
        read.docs.select(pl.col("normalized").explode(empty_as_null=False)), "normalized"
    )
    redacted = counts_by(
        read.docs.select(pl.col("redactions").explode(empty_as_null=False)), "redactions"
    )
    stats = {
        "shard": key,
        "file": shard.name,
        "content_sha": read.content_sha,
        **({"etag": etag} if etag else {}),
        "records_in": read.records_in,
        "kept": read.docs.height,
        "quarantined": read.quarantine.height,
        "quarantined_by_reason": by_reason,
        "normalized_by_change": normalized,
        "redactions_by_reason": redacted,
        "records_redacted": int((read.docs["redactions"].list.len() > 0).sum()),
        "file_error": read.file_error,
        "run_id": context.run.run_id,
    }
    write_json(stats, layout.shard_stats(key))
    return MaterializeResult(
        metadata={
            **table_metadata(docs.schema, docs.height, partitioned=True),
            "records_in": read.records_in,
            "kept": read.docs.height,
            "quarantined": read.quarantine.height,
            "quarantined_by_reason": MetadataValue.json(by_reason),
            "normalized_by_change": MetadataValue.json(normalized),
            "redactions_by_reason": MetadataValue.json(redacted),
            "records_redacted": stats["records_redacted"],
            "file_error": read.file_error or "none",
            "content_sha": read.content_sha,
            **({"etag": etag} if etag else {}),
            "kinds": MetadataValue.json(counts_by(read.docs, "kind")),
            "path": MetadataValue.path(str(layout.shard_file("raw_docs", key))),
            "quarantine_path": MetadataValue.path(str(layout.quarantine_file(key))),
            "preview": preview(read.docs, ["doc_id", "kind", "title", "text"]),
            "quarantine_preview": frame_table(
                read.quarantine, ["line", "reason", "detail", "raw"], rows=QUARANTINE_PREVIEW
            ),
        },
        check_results=[
            check_result(
                RECORDS_CONSERVED,
                records_conserved(read.records_in, read.docs.height, read.quarantine.height),
            ),
            check_result(
                RAW_SUITE,
                suite_outcome(read.docs, "raw_docs", max_doc_chars=settings.ingest.max_doc_chars),
            ),
        ],
    )
