"""`ordered_docs` (the scaffolded curriculum over all shards) and `training_ready_corpus`."""

import base64
import json
import shutil
import time
from pathlib import Path

from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
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
    table_value,
)
from raising_dagster.assets.framing import experiential_docs, first_person_docs, social_docs
from raising_dagster.assets.raw import raw_docs
from raising_dagster.assets.scored import scored_docs
from raising_dagster.expectations.curriculum import curriculum_gates, text_variety
from raising_dagster.expectations.gate import blocking_failures, left_out_reason, refusal
from raising_dagster.expectations.invariants import curriculum_ordered, quarantined_share
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.stages import card
from raising_dagster.stages.dedup import find_duplicates
from raising_dagster.stages.ingest import scan_landing
from raising_dagster.stages.lineage import (
    AUDIT_COPIES,
    AUDIT_DIR,
    LINEAGE_FILE,
    build_lineage,
    stage_runs,
    write_audit_copies,
)
from raising_dagster.stages.order import connect, order_records, sql_literal
from raising_dagster.stages.pack import build_training_corpus
from raising_dagster.stages.report import REPORT_FILE, write_report
from raising_dagster.stages.shards import Withdrawals, drop_documents, select_shards
from raising_dagster.storage import Location, read_parquet
from raising_dagster.store import (
    PUBLICATION_FILE,
    StoreLayout,
    current_publication,
    new_publication_id,
    publish,
    write_json,
    write_parquet,
)

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
# The per-shard assets whose checks explain why a shard is left out (expectations/gate.py).
SHARD_GATED_BY = (raw_docs, scored_docs, first_person_docs, experiential_docs, social_docs)
# The per-shard files a publication's lineage table reads, by asset.
_LINEAGE_ASSETS = tuple(a.key.to_user_string() for a in SHARD_GATED_BY)


def _ready_shards(layout: StoreLayout, registered: list[str]) -> tuple[list[str], list[str]]:
    """Registered shards whose renderings are all written, and those still pending (one listing
    of each asset's folder, not a request per file: the store may be on S3)."""
    written = [
        {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        for folder in (layout.root / a for a in _RENDERINGS)
    ]
    ready = [k for k in registered if all(f"{k}.parquet" in names for names in written)]
    return ready, [k for k in registered if k not in ready]


def _phase_table(phases: list[dict]) -> MetadataValue:
    return table_value(
        [
            {
                "phase": p["name"],
                "stages": p["stages"],
                "records": p["records"],
                "tokens": p.get("tokens"),
                "positions": f"{p['first_position']}..{p['last_position']}",
                "megatron_prefix": p.get("megatron_prefix"),
            }
            for p in phases
        ],
        ["phase", "stages", "records", "tokens", "positions", "megatron_prefix"],
    )


def _stage_table(stages: list[dict]) -> MetadataValue:
    return table_value(
        [
            {
                "stage": s["name"],
                "records": s["records"],
                "tokens": s.get("tokens", s.get("approx_tokens")),
                "positions": f"{s['first_position']}..{s['last_position']}",
                "p50_difficulty": s["difficulty_quantiles"].get("p50"),
            }
            for s in stages
        ],
        ["stage", "records", "tokens", "positions", "p50_difficulty"],
    )


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
    withdrawals = Withdrawals.load(layout.withdrawals_file)
    selection = select_shards(
        context.instance.get_dynamic_partitions(raw_shards.name), scan, withdrawals.shards
    )
    ready, pending = _ready_shards(layout, selection.active)
    left_out = [
        {"shard": k, "reason": r, "detail": ""} for k, r in sorted(selection.withdrawn.items())
    ] + [left_out_reason(context.instance, SHARD_GATED_BY, k) for k in pending]
    for entry in left_out:
        context.log.info(
            "shard %s left out of the curriculum: %s %s",
            entry["shard"],
            entry["reason"],
            entry["detail"],
        )
    if not ready:
        raise Failure(
            "no shard of the landing folder has been materialized through scored_docs yet; "
            "run the shards first"
        )
    skipped = scan.skipped_records()
    write_json(skipped, layout.skipped_files)
    shard_stats = [json.loads(layout.shard_stats(k).read_text()) for k in ready]
    con = connect(temp_dir=layout.duckdb_tmp, store=layout.root)
    try:
        duplicates = find_duplicates(
            con, [layout.shard_file("raw_docs", k) for k in ready], settings.dedup
        )
        _, infeasible = order_records(
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
        write_parquet(
            con.sql("SELECT * FROM excluded ORDER BY shard, doc_id, variant").pl(),
            layout.exclusions_file,
        )
        withdrawn_docs = drop_documents(
            con, layout.ordered_file, layout.exclusions_file, withdrawals.documents
        )
        exclusions = read_parquet(layout.exclusions_file)
        summary = con.sql(
            f"""SELECT stage_index, stage, variant, count(*) AS records,
                       min(position) AS first_position, max(position) AS last_position
                FROM read_parquet({sql_literal(layout.ordered_file)})
                GROUP BY ALL ORDER BY stage_index, variant"""
        ).pl()
        outcome = curriculum_ordered(con, layout.ordered_file, settings.curriculum)
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
            "left_out": left_out,
            "withdrawals": withdrawn_docs,
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
            "left_out_shards": table_value(left_out, ["shard", "reason", "detail"]),
            "withdrawn_documents": table_value(
                withdrawn_docs, ["shard", "doc_id", "reason", "records_dropped"]
            ),
            "skipped_files": MetadataValue.json(skipped),
            "skipped_files_path": MetadataValue.path(str(layout.skipped_files)),
            "exclusions_by_reason": MetadataValue.json(by_reason),
            "stages": table_value(
                summary.to_dicts(),
                ["stage", "variant", "records", "first_position", "last_position"],
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
    a dataset card, plots, manifest.json, the lineage table and the audit report, kept as a new
    publication (publications/<id>) that training_ready then points at, whole or not at all."""
    settings = raising.settings
    layout = raising.layout
    ordered_shards = json.loads(layout.ordered_file.with_suffix(".shards.json").read_text())
    shards = ordered_shards["shards"]
    # Gate: publish only what every upstream blocking check last passed (expectations/gate.py).
    problems = blocking_failures(context.instance, GATED_BY, shards)
    if problems:
        raise Failure(
            refusal(problems),
            metadata={"failed_checks": MetadataValue.json([p.__dict__ for p in problems])},
        )
    exclusions = counts_by(read_parquet(layout.exclusions_file), "reason")
    shard_stats = [json.loads(layout.shard_stats(k).read_text()) for k in shards]
    staging = layout.staging_dir()
    con = connect(temp_dir=layout.duckdb_tmp, store=layout.root)
    try:
        manifest = build_training_corpus(
            con, layout.ordered_file, staging, settings, shard_stats, exclusions
        )
        manifest.update(
            withdrawn_shards=ordered_shards["withdrawn"],
            left_out_shards=ordered_shards.get("left_out", []),
            withdrawals=ordered_shards.get("withdrawals", []),
            skipped_files=ordered_shards["skipped_files"],
            lineage=LINEAGE_FILE,
            report=REPORT_FILE,
            audit_files=[f"{AUDIT_DIR}/{name}" for name in AUDIT_COPIES],
        )
        build_lineage(
            con,
            staging / "data" / "*.parquet",
            {k: {a: layout.shard_file(a, k) for a in _LINEAGE_ASSETS} for k in shards},
            shard_stats,
            staging / LINEAGE_FILE,
        )
        runs = stage_runs(con, staging / LINEAGE_FILE)
        write_json(manifest, staging / "manifest.json")
        # the card again, now that the manifest names what was left out and withdrawn
        (staging / card.CARD_FILE).write_text(
            card.render(manifest, settings.dataset_card), encoding="utf-8"
        )
        publication_id = new_publication_id(layout, staging / "manifest.json")
        ordered_run = _latest_run(context, "ordered_docs")
        write_json(
            {
                "id": publication_id,
                "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "previous": current_publication(layout),
                "run_id": context.run.run_id,
                "ordered_docs_run_id": ordered_run,
                "stage_runs": runs,
                "config_sha": manifest["config_sha"],
                "codex_sha": manifest["codex_sha"],
                "identity_sha": manifest["identity_sha"],
                "copies": write_audit_copies(settings, staging / AUDIT_DIR),
            },
            staging / PUBLICATION_FILE,
        )
        write_report(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        con.close()
    folder = publish(layout, staging, publication_id)
    context.log.info(
        "published %s records as publication %s; %s points at it",
        manifest["records"],
        publication_id,
        layout.pointer_file if layout.remote else layout.training_dir,
    )
    return MaterializeResult(
        metadata={
            **table_metadata(folder / "data" / "*.parquet", manifest["records"]),
            "records": manifest["records"],
            "tokens": manifest["tokens"],
            "tokenizer": manifest["tokenized"].get("tokenizer", "disabled"),
            "files": len(manifest["files"]),
            "publication": publication_id,
            "publication_path": MetadataValue.path(str(folder)),
            "stages": _stage_table(manifest["stages"]),
            "phases": _phase_table(manifest["phases"]),
            "difficulty_by_stage": table_value(
                [
                    {"stage": s["name"], "records": s["records"], **s["difficulty_quantiles"]}
                    for s in manifest["stages"]
                ],
                ["stage", "records", "p10", "p50", "p90"],
            ),
            "value_coverage": table_value(
                [{"stage": s["name"], **s["value_coverage"]} for s in manifest["stages"]],
                ["stage", *settings.codex.names],
            ),
            "left_out_shards": table_value(
                manifest["left_out_shards"], ["shard", "reason", "detail"]
            ),
            "withdrawn_documents": table_value(
                manifest["withdrawals"], ["shard", "doc_id", "reason", "records_dropped"]
            ),
            **{
                f"plot_{Path(p).stem}": MetadataValue.md(_png_markdown(folder / p))
                for p in manifest["plots"]
            },
            "audit_report": MetadataValue.path(str(folder / REPORT_FILE)),
            "lineage": MetadataValue.path(str(folder / LINEAGE_FILE)),
            "manifest": MetadataValue.path(str(folder / "manifest.json")),
            **({"ordered_docs_run": MetadataValue.dagster_run(ordered_run)} if ordered_run else {}),
            "stage_runs": MetadataValue.md(_runs_markdown(runs)),
        }
    )


def _latest_run(context: AssetExecutionContext, asset_name: str) -> str | None:
    event = context.instance.get_latest_materialization_event(AssetKey(asset_name))
    return event.run_id if event else None


def _runs_markdown(runs: dict[str, dict[str, list[str]]]) -> str:
    """A table of the runs that made each shard's records, each linked to its page in the UI."""
    stages = ["raw", "scored", "first_person", "experiential", "social"]
    lines = ["| shard | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages)]
    for shard, by_stage in sorted(runs.items()):
        cells = [
            " ".join(f"[{r[:8]}](/runs/{r})" for r in by_stage.get(stage, [])) or "-"
            for stage in stages
        ]
        lines.append(f"| {shard} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _png_markdown(path: Location) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"![{path.stem}](data:image/png;base64,{encoded})"
