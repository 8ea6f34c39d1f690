"""`first_person_docs`, `experiential_docs`, `social_docs`: the three framings by the teacher."""

from collections.abc import Callable

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
    preview,
    schema_metadata,
    table_metadata,
)
from raising_dagster.assets.raw import raw_docs
from raising_dagster.assets.scored import scored_docs
from raising_dagster.expectations.gx_suites import suite_outcome
from raising_dagster.expectations.invariants import framing_coverage
from raising_dagster.partitions import raw_shards
from raising_dagster.progress import stage_progress
from raising_dagster.resources import RaisingResource, TeacherResource
from raising_dagster.schema import REWRITE_SCHEMA, RUN_ID, STORED
from raising_dagster.stages import rewrite
from raising_dagster.stages.rewrite import BatchDone, teacher_summary
from raising_dagster.storage import read_parquet, write_parquet
from raising_dagster.teacher.base import Stage, Teacher

FIRST_PERSON_FRAMED = "every_record_framed_in_first_person"
EXPERIENCE_REFLECTED = "every_record_has_first_person_reflection"
DIALOGUE_PARSES = "every_record_is_dialogue_with_i_speaking"
FIRST_PERSON_SUITE = "first_person_docs_meet_expectation_suite"
EXPERIENTIAL_SUITE = "experiential_docs_meet_expectation_suite"
SOCIAL_SUITE = "social_docs_meet_expectation_suite"
# The Dagster pool of the steps that call the teacher: its limit (dagster.yaml, concurrency >
# pools) caps how many framing steps talk to the teacher at once, across every run.
TEACHER_POOL = "teacher"


def _result(
    context: AssetExecutionContext,
    raising: RaisingResource,
    asset: str,
    variant: str,
    check: str,
    suite_check: str,
    frame: pl.DataFrame,
    throughput: dict[str, float],
) -> MaterializeResult:
    path = raising.layout.shard_file(asset, context.partition_key)
    # typed even when empty (a shard with no readable record); each record names its run
    frame = frame.cast(REWRITE_SCHEMA).with_columns(
        pl.lit(context.run.run_id, pl.String).alias(RUN_ID)
    )
    write_parquet(frame, path)
    outcome = framing_coverage(frame, variant, raising.settings.checks.min_framed_share)
    summary = teacher_summary(frame)
    return MaterializeResult(
        metadata={
            **table_metadata(frame.schema, frame.height, partitioned=True),
            "records": frame.height,
            "records_by_writer": MetadataValue.json(summary["by_writer"]),
            "llm_tried": summary["llm_tried"],
            "llm_accepted": summary["llm_accepted"],
            "llm_acceptance": summary["llm_acceptance"] or 0.0,
            "mean_grounding": summary["mean_grounding"] or 0.0,
            **throughput,
            "cache_hits": int(frame["cache_hit"].sum()),
            "cache_misses": int((~frame["cache_hit"]).sum()),
            "fallbacks_by_reason": MetadataValue.json(summary["fallbacks_by_reason"]),
            "path": MetadataValue.path(str(path)),
            "preview": preview(frame, ["doc_id", "values", "text"]),
        },
        check_results=[
            check_result(check, outcome),
            check_result(suite_check, suite_outcome(frame, asset, variant)),
        ],
    )


def _read(raising: RaisingResource, asset: str, partition: str) -> pl.DataFrame:
    return read_parquet(raising.layout.shard_file(asset, partition))


def _frame(
    context: AssetExecutionContext,
    teacher: TeacherResource,
    stage: Stage,
    docs: int,
    run: Callable[[Teacher, BatchDone], pl.DataFrame],
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Run a framing stage with a progress bar (documents, tokens/s, ETA) on a terminal; returns
    its records and the LLM's throughput in this stage (empty without an LLM)."""
    active = teacher.get()
    llm = getattr(active, "inner", active)
    stats = getattr(llm, "stats", None)
    before = (stats.generated_tokens, stats.generation_s, stats.calls) if stats else None
    with stage_progress(f"{stage} [{context.partition_key}]", docs) as progress:
        if hasattr(llm, "progress"):
            llm.progress = progress.generated
        try:
            frame = run(active, progress.documents)
        finally:
            if hasattr(llm, "progress"):
                llm.progress = None
    if stats is None or before is None:
        return frame, {}
    tokens, seconds = stats.generated_tokens - before[0], stats.generation_s - before[1]
    return frame, {
        "llm_calls": float(stats.calls - before[2]),
        "llm_generated_tokens": float(tokens),
        "llm_generation_s": round(seconds, 2),
        "llm_tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0,
    }


@asset(
    group_name=GROUP,
    partitions_def=raw_shards,
    deps=[scored_docs],
    pool=TEACHER_POOL,
    check_specs=[
        blocking_check(FIRST_PERSON_FRAMED, "first_person_docs", raw_shards),
        blocking_check(FIRST_PERSON_SUITE, "first_person_docs", raw_shards),
    ],
    kinds=POLARS_KINDS,
    metadata=schema_metadata({**REWRITE_SCHEMA, **STORED}),
)
def first_person_docs(
    context: AssetExecutionContext, raising: RaisingResource, teacher: TeacherResource
) -> MaterializeResult:
    """Every document framed as seen by the one persistent "I", varied by kind of document."""
    settings = raising.settings
    key = context.partition_key
    raw = _read(raising, "raw_docs", key)
    scored = _read(raising, "scored_docs", key)
    frame, throughput = _frame(
        context,
        teacher,
        "first_person",
        raw.height,
        lambda t, done: rewrite.first_person(
            raw,
            scored,
            t,
            settings.codex,
            settings.curriculum.seed,
            settings.teacher.batch_size,
            done,
        ),
    )
    return _result(
        context,
        raising,
        "first_person_docs",
        "first_person",
        FIRST_PERSON_FRAMED,
        FIRST_PERSON_SUITE,
        frame,
        throughput,
    )


@asset(
    group_name=GROUP,
    partitions_def=raw_shards,
    deps=[first_person_docs],
    pool=TEACHER_POOL,
    check_specs=[
        blocking_check(EXPERIENCE_REFLECTED, "experiential_docs", raw_shards),
        blocking_check(EXPERIENTIAL_SUITE, "experiential_docs", raw_shards),
    ],
    kinds=POLARS_KINDS,
    metadata=schema_metadata({**REWRITE_SCHEMA, **STORED}),
)
def experiential_docs(
    context: AssetExecutionContext, raising: RaisingResource, teacher: TeacherResource
) -> MaterializeResult:
    """The framed documents set in lived experience, with a reflection on the values taught."""
    settings = raising.settings
    framed = _read(raising, "first_person_docs", context.partition_key)
    frame, throughput = _frame(
        context,
        teacher,
        "experiential",
        framed.height,
        lambda t, done: rewrite.experiential(
            framed, t, settings.codex, settings.curriculum.seed, settings.teacher.batch_size, done
        ),
    )
    return _result(
        context,
        raising,
        "experiential_docs",
        "experiential",
        EXPERIENCE_REFLECTED,
        EXPERIENTIAL_SUITE,
        frame,
        throughput,
    )


@asset(
    group_name=GROUP,
    partitions_def=raw_shards,
    deps=[experiential_docs, raw_docs],
    pool=TEACHER_POOL,
    check_specs=[
        blocking_check(DIALOGUE_PARSES, "social_docs", raw_shards),
        blocking_check(SOCIAL_SUITE, "social_docs", raw_shards),
    ],
    kinds=POLARS_KINDS,
    metadata=schema_metadata({**REWRITE_SCHEMA, **STORED}),
)
def social_docs(
    context: AssetExecutionContext, raising: RaisingResource, teacher: TeacherResource
) -> MaterializeResult:
    """A scripted dialogue, for a seeded share of the documents, in which the "I" talks with a
    person of the identity card chosen by kind."""
    settings = raising.settings
    key = context.partition_key
    experienced = _read(raising, "experiential_docs", key)
    raw = _read(raising, "raw_docs", key)
    chosen = rewrite.dialogue_docs(
        experienced, settings.curriculum.seed, settings.curriculum.social_share
    )
    frame, throughput = _frame(
        context,
        teacher,
        "social",
        chosen.height,
        lambda t, done: rewrite.social(
            experienced,
            raw,
            t,
            settings.codex,
            settings.curriculum.seed,
            settings.curriculum.social_share,
            settings.teacher.batch_size,
            done,
        ),
    )
    return _result(
        context, raising, "social_docs", "social", DIALOGUE_PARSES, SOCIAL_SUITE, frame, throughput
    )
