"""`first_person_docs`, `experiential_docs`, `social_docs`: the three framings by the teacher."""

import polars as pl
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
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
    preview,
    schema_metadata,
    stage_code_version,
    table_metadata,
)
from raising_dagster.assets.raw import raw_docs
from raising_dagster.expectations.gx_suites import suite_outcome
from raising_dagster.expectations.invariants import framing_coverage
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource, TeacherResource
from raising_dagster.schema import REWRITE_SCHEMA
from raising_dagster.stages import rewrite
from raising_dagster.store import write_parquet

FIRST_PERSON_FRAMED = "every_record_framed_in_first_person"
EXPERIENCE_REFLECTED = "every_record_has_first_person_reflection"
DIALOGUE_PARSES = "every_record_is_dialogue_with_i_speaking"
FIRST_PERSON_SUITE = "first_person_docs_meet_expectation_suite"
EXPERIENTIAL_SUITE = "experiential_docs_meet_expectation_suite"
SOCIAL_SUITE = "social_docs_meet_expectation_suite"


def _result(
    context: AssetExecutionContext,
    raising: RaisingResource,
    asset: str,
    variant: str,
    check: str,
    suite_check: str,
    frame: pl.DataFrame,
) -> MaterializeResult:
    path = raising.layout.shard_file(asset, context.partition_key)
    write_parquet(frame, path)
    outcome = framing_coverage(frame, variant, raising.settings.checks.min_framed_share)
    return MaterializeResult(
        metadata={
            **table_metadata(frame.schema, frame.height, partitioned=True),
            "records": frame.height,
            "teacher": f"{frame['teacher_backend'][0]}/{frame['teacher_model'][0]}"
            if frame.height
            else "none",
            "cache_hits": int(frame["cache_hit"].sum()),
            "cache_misses": int((~frame["cache_hit"]).sum()),
            "fallbacks_by_reason": MetadataValue.json(counts_by(frame, "fallback_reason")),
            "path": MetadataValue.path(str(path)),
            "preview": preview(frame, ["doc_id", "values", "text"]),
        },
        check_results=[
            check_result(check, outcome),
            check_result(suite_check, suite_outcome(frame, asset, variant)),
        ],
    )


def _read(raising: RaisingResource, asset: str, partition: str) -> pl.DataFrame:
    return pl.read_parquet(raising.layout.shard_file(asset, partition))


@asset(
    group_name=GROUP,
    partitions_def=raw_shards,
    deps=[raw_docs],
    backfill_policy=BackfillPolicy.multi_run(1),
    check_specs=[
        blocking_check(FIRST_PERSON_FRAMED, "first_person_docs", raw_shards),
        blocking_check(FIRST_PERSON_SUITE, "first_person_docs", raw_shards),
    ],
    code_version=stage_code_version("first_person"),
    kinds=POLARS_KINDS,
    metadata=schema_metadata(REWRITE_SCHEMA),
)
def first_person_docs(
    context: AssetExecutionContext, raising: RaisingResource, teacher: TeacherResource
) -> MaterializeResult:
    """Every document framed as seen by the one persistent "I", varied by kind of document."""
    settings = raising.settings
    frame = rewrite.first_person(
        _read(raising, "raw_docs", context.partition_key),
        teacher.get(),
        settings.codex,
        settings.curriculum.seed,
        settings.teacher.batch_size,
    )
    return _result(
        context,
        raising,
        "first_person_docs",
        "first_person",
        FIRST_PERSON_FRAMED,
        FIRST_PERSON_SUITE,
        frame,
    )


@asset(
    group_name=GROUP,
    partitions_def=raw_shards,
    deps=[first_person_docs],
    backfill_policy=BackfillPolicy.multi_run(1),
    check_specs=[
        blocking_check(EXPERIENCE_REFLECTED, "experiential_docs", raw_shards),
        blocking_check(EXPERIENTIAL_SUITE, "experiential_docs", raw_shards),
    ],
    code_version=stage_code_version("experiential"),
    kinds=POLARS_KINDS,
    metadata=schema_metadata(REWRITE_SCHEMA),
)
def experiential_docs(
    context: AssetExecutionContext, raising: RaisingResource, teacher: TeacherResource
) -> MaterializeResult:
    """The framed documents set in lived experience, with a reflection tied to codex values."""
    settings = raising.settings
    frame = rewrite.experiential(
        _read(raising, "first_person_docs", context.partition_key),
        teacher.get(),
        settings.codex,
        settings.curriculum.seed,
        settings.teacher.batch_size,
    )
    return _result(
        context,
        raising,
        "experiential_docs",
        "experiential",
        EXPERIENCE_REFLECTED,
        EXPERIENTIAL_SUITE,
        frame,
    )


@asset(
    group_name=GROUP,
    partitions_def=raw_shards,
    deps=[experiential_docs],
    backfill_policy=BackfillPolicy.multi_run(1),
    check_specs=[
        blocking_check(DIALOGUE_PARSES, "social_docs", raw_shards),
        blocking_check(SOCIAL_SUITE, "social_docs", raw_shards),
    ],
    code_version=stage_code_version("social"),
    kinds=POLARS_KINDS,
    metadata=schema_metadata(REWRITE_SCHEMA),
)
def social_docs(
    context: AssetExecutionContext, raising: RaisingResource, teacher: TeacherResource
) -> MaterializeResult:
    """A scripted dialogue per document in which the "I" talks with a recurring mentor figure."""
    settings = raising.settings
    key = context.partition_key
    frame = rewrite.social(
        _read(raising, "experiential_docs", key),
        _read(raising, "raw_docs", key),
        teacher.get(),
        settings.codex,
        settings.curriculum.seed,
        settings.teacher.batch_size,
    )
    return _result(context, raising, "social_docs", "social", DIALOGUE_PARSES, SOCIAL_SUITE, frame)
