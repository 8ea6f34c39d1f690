"""`ordered_docs` (the scaffolded curriculum over all shards) and `training_ready_corpus`."""

import base64
import json
import shutil
import uuid
from pathlib import Path

import polars as pl
from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from raising_dagster.assets.common import (
    DUCKDB_KINDS,
    GROUP,
    blocking_check,
    check_result,
    counts_by,
    table_metadata,
)
from raising_dagster.assets.framing import experiential_docs, first_person_docs, social_docs
from raising_dagster.assets.raw import raw_docs
from raising_dagster.assets.scored import scored_docs
from raising_dagster.expectations.curriculum import curriculum_gates, text_variety
from raising_dagster.expectations.gate import blocking_failures, refusal
from raising_dagster.expectations.invariants import curriculum_ordered, quarantined_share
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.stages.dedup import find_duplicates
from raising_dagster.stages.ingest import scan_landing
from raising_dagster.stages.order import connect, order_records
from raising_dagster.stages.pack import build_training_corpus
from raising_dagster.stages.shards import select_shards
from raising_dagster.store import StoreLayout, replace_dir, write_json, write_parquet

CURRICULUM_ORDERED = "positions_contiguous_and_stages_non_decreasing"
# Quality gates on the curriculum (raising_dagster/expectations/curriculum.py).
VALUES_COVERED = "each_stage_covers_each_value_at_min_share"
DIFFICULTY_RISING = "stage_median_difficulty_rising"
NO_RAW_LEAKAGE = "no_record_is_raw_text_without_framing"
LINEAGE_COMPLETE = "every_record_traces_to_raw_doc_prompt_and_model"
KEPT_REACH_CURRICULUM = "every_kept_doc_in_curriculum_or_excluded_with_reason"
ORDERED_SUITE = "ordered_docs_meet_expectation_suite"
QUARANTINE_BOUNDED = "quarantined_share_within_limit"
# Advisory (WARN, never blocks): the teacher's words vary with the documents.
TEXT_VARIED = "teacher_text_varies_across_records"
_RENDERINGS = ("scored_docs", "experiential_docs", "social_docs")


def _ready_shards(layout: StoreLayout, registered: list[str]) -> tuple[list[str], list[str]]:
    """Registered shards whose renderings are all written, and those still pending."""
    ready = [k for k in registered if all(layout.shard_file(a, k).exists() for a in _RENDERINGS)]
    return ready, [k for k in registered if k not in ready]


def _phase_table(phases: list[dict]) -> MetadataValue:
    lines = [
        "| phase (HF config) | stages | records | tokens | positions | Megatron prefix |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {p['name']} | {', '.join(p['stages'])} | {p['records']} | {p.get('tokens', '')} | "
        f"{p['first_position']}..{p['last_position']} | {p.get('megatron_prefix', '')} |"
        for p in phases
    ]
    return MetadataValue.md("\n".join(lines))


def _stage_table(stages: list[dict]) -> MetadataValue:
    lines = ["| stage | records | tokens | positions | p50 difficulty |", "|---|---|---|---|---|"]
    lines += [
        f"| {s['name']} | {s['records']} | {s['tokens']} | "
        f"{s['first_position']}..{s['last_position']}"
        f" | {s['difficulty_quantiles'].get('p50', '')} |"
        for s in stages
    ]
    return MetadataValue.md("\n".join(lines))


@asset(
    group_name=GROUP,
    deps=[scored_docs, experiential_docs, social_docs],
    check_specs=[
        blocking_check(name, "ordered_docs")
        for name in (
            CURRICULUM_ORDERED,
            VALUES_COVERED,
            DIFFICULTY_RISING,
            NO_RAW_LEAKAGE,
            LINEAGE_COMPLETE,
            KEPT_REACH_CURRICULUM,
            ORDERED_SUITE,
            QUARANTINE_BOUNDED,
        )
    ]
    + [
        AssetCheckSpec(
            TEXT_VARIED,
            asset="ordered_docs",
            blocking=False,
            description="No closing sentence on more than 2% of records, at least half of the "
            "closings distinct, no person in more than half of the dialogues (advisory).",
        )
    ],
    kinds=DUCKDB_KINDS,
)
def ordered_docs(context: AssetExecutionContext, raising: RaisingResource) -> MaterializeResult:
    """Every record of every active shard (registered and in the landing folder) in one
    scaffolded curriculum order, simple to complex."""
    settings = raising.settings
    layout = raising.layout
    scan = scan_landing(settings.landing_dir)
    selection = select_shards(context.instance.get_dynamic_partitions(raw_shards.name), scan)
    ready, pending = _ready_shards(layout, selection.active)
    for key, reason in selection.withdrawn.items():
        context.log.info("shard %s left out of the curriculum: %s", key, reason)
    if not ready:
        raise Failure(
            "no shard of the landing folder has been materialized through scored_docs yet; "
            "run the shards first"
        )
    skipped = scan.skipped_records()
    write_json(skipped, layout.skipped_files)
    shard_stats = [json.loads(layout.shard_stats(k).read_text()) for k in ready]
    con = connect(temp_dir=layout.root / ".duckdb_tmp")
    try:
        duplicates = find_duplicates(
            con, [layout.shard_file("raw_docs", k) for k in ready], settings.dedup
        )
        summary, infeasible = order_records(
            con,
            [layout.shard_file("scored_docs", k) for k in ready],
            [layout.shard_file("experiential_docs", k) for k in ready],
            [layout.shard_file("social_docs", k) for k in ready],
            layout.ordered_file,
            settings.curriculum,
            settings.codex,
            settings.identity,
            duplicates,
        )
        outcome = curriculum_ordered(con, layout.ordered_file, settings.curriculum)
        exclusions = con.sql("SELECT * FROM excluded ORDER BY shard, doc_id, variant").pl()
        write_parquet(exclusions, layout.exclusions_file)
        variety = text_variety(con, layout.ordered_file)
        gates = curriculum_gates(
            con,
            layout.ordered_file,
            [layout.shard_file("raw_docs", k) for k in ready],
            layout.exclusions_file,
            pending,
            settings,
            infeasible,
        )
    finally:
        con.close()
    by_reason = counts_by(exclusions, "reason")
    write_json(
        {
            "shards": ready,
            "pending": pending,
            "withdrawn": selection.withdrawn_records(),
            "skipped_files": skipped,
        },
        layout.ordered_file.with_suffix(".shards.json"),
    )
    return MaterializeResult(
        metadata={
            **table_metadata(layout.ordered_file, int(summary["records"].sum())),
            "records": int(summary["records"].sum()),
            "shards": MetadataValue.json(ready),
            "pending_shards": MetadataValue.json(pending),
            "withdrawn_shards": MetadataValue.json(selection.withdrawn_records()),
            "skipped_files": MetadataValue.json(skipped),
            "skipped_files_path": MetadataValue.path(str(layout.skipped_files)),
            "exclusions_by_reason": MetadataValue.json(by_reason),
            "stages": MetadataValue.md(
                "| stage | variant | records | positions |\n|---|---|---|---|\n"
                + "\n".join(
                    f"| {r['stage']} | {r['variant']} | {r['records']} | "
                    f"{r['first_position']}..{r['last_position']} |"
                    for r in summary.iter_rows(named=True)
                )
            ),
            "path": MetadataValue.path(str(layout.ordered_file)),
        },
        check_results=[
            check_result(CURRICULUM_ORDERED, outcome),
            check_result(VALUES_COVERED, gates.values_covered),
            check_result(DIFFICULTY_RISING, gates.difficulty_rising),
            check_result(NO_RAW_LEAKAGE, gates.no_raw_leakage),
            check_result(LINEAGE_COMPLETE, gates.lineage_complete),
            check_result(KEPT_REACH_CURRICULUM, gates.kept_reach_curriculum),
            check_result(ORDERED_SUITE, gates.suite),
            check_result(
                QUARANTINE_BOUNDED,
                quarantined_share(shard_stats, settings.checks.max_quarantined_share),
            ),
            check_result(TEXT_VARIED, variety, AssetCheckSeverity.WARN),
        ],
    )


# Every asset whose blocking checks must last have passed before the corpus is published.
GATED_BY = (raw_docs, first_person_docs, experiential_docs, social_docs, scored_docs, ordered_docs)


@asset(
    group_name=GROUP,
    deps=[ordered_docs],
    kinds={*DUCKDB_KINDS, "huggingface"},
)
def training_ready_corpus(
    context: AssetExecutionContext, raising: RaisingResource
) -> MaterializeResult:
    """The curriculum in training order: Parquet parts and one token prefix (.bin/.idx) per phase,
    a dataset card, plots and manifest.json, swapped in whole or not at all."""
    settings = raising.settings
    layout = raising.layout
    target = layout.training_dir
    staging = target.with_name(f".{target.name}.staging-{uuid.uuid4().hex}")
    ordered_shards = json.loads(layout.ordered_file.with_suffix(".shards.json").read_text())
    shards = ordered_shards["shards"]
    # Gate: publish only what every upstream blocking check last passed (expectations/gate.py).
    problems = blocking_failures(context.instance, GATED_BY, shards)
    if problems:
        raise Failure(
            refusal(problems),
            metadata={"failed_checks": MetadataValue.json([p.__dict__ for p in problems])},
        )
    exclusions = counts_by(pl.read_parquet(layout.exclusions_file), "reason")
    con = connect(temp_dir=layout.root / ".duckdb_tmp")
    try:
        manifest = build_training_corpus(
            con,
            layout.ordered_file,
            staging,
            settings,
            [json.loads(layout.shard_stats(k).read_text()) for k in shards],
            exclusions,
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        con.close()
    manifest["withdrawn_shards"] = ordered_shards["withdrawn"]
    manifest["skipped_files"] = ordered_shards["skipped_files"]
    write_json(manifest, staging / "manifest.json")
    replace_dir(staging, target)
    context.log.info("published %s records to %s", manifest["records"], target)
    return MaterializeResult(
        metadata={
            **table_metadata(target / "data" / "*.parquet", manifest["records"]),
            "records": manifest["records"],
            "tokens": manifest["tokens"],
            "tokenizer": manifest["tokenized"].get("tokenizer", "disabled"),
            "files": len(manifest["files"]),
            "stages": _stage_table(manifest["stages"]),
            "phases": _phase_table(manifest["phases"]),
            "value_coverage": MetadataValue.json(
                {s["name"]: s["value_coverage"] for s in manifest["stages"]}
            ),
            **{
                f"plot_{Path(p).stem}": MetadataValue.md(_png_markdown(target / p))
                for p in manifest["plots"]
            },
            "manifest": MetadataValue.path(str(target / "manifest.json")),
        }
    )


def _png_markdown(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"![{path.stem}](data:image/png;base64,{encoded})"
