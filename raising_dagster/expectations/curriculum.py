"""Quality gates on the ordered curriculum, computed in DuckDB over the Parquet files (no Dagster).

Each function returns an Outcome naming the offending records (or stages) in its metadata; the
ordered_docs asset reports one blocking check per function, and training_ready_corpus refuses to
publish while any of them last failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from raising_dagster.config import RaisingSettings, ValueCodex
from raising_dagster.expectations.gx_suites import ordered_key_frame, validate
from raising_dagster.expectations.invariants import LISTED, Outcome, offending_table
from raising_dagster.stages.order import run_sql, sql_files, sql_literal

LINEAGE_FIELDS = ("prompt_id", "prompt_sha", "teacher_backend", "teacher_model")
_EXCERPT = 160


def value_coverage(
    con: duckdb.DuckDBPyConnection,
    ordered_file: Path,
    codex: ValueCodex,
    stage_names: list[str],
    infeasible: list[str] | None = None,
) -> Outcome:
    """Each stage has at least the codex's `min_share` of records teaching each value (the
    record's `values`: detected or assigned); an empty stage covers nothing. `infeasible` names
    the stages no assignment could satisfy (stages/values.py `top_up_values`), and why."""
    wanted = [(v.name, s, share) for v in codex.values for s, share in v.min_share.items() if share]
    counts = dict.fromkeys(stage_names, 0) | dict(
        run_sql(
            con,
            f"SELECT stage, count(*) FROM read_parquet({sql_literal(ordered_file)}) GROUP BY stage",
        )
    )
    hits = {
        (stage, value): n
        for stage, value, n in run_sql(
            con,
            f"""SELECT stage, v, count(*) FROM (SELECT stage, unnest(list_distinct("values")) AS v
                                             FROM read_parquet({sql_literal(ordered_file)}))
                GROUP BY ALL""",
        )
    }
    short = []
    for value, stage, share in wanted:
        records = counts.get(stage, 0)
        found = hits.get((stage, value), 0) / records if records else 0.0
        if found < share:
            short.append(
                {
                    "stage": stage,
                    "value": value,
                    "share": round(found, 5),
                    "min_share": share,
                    "records_in_stage": records,
                }
            )
    short.sort(key=lambda s: stage_names.index(s["stage"]))
    empty = list(dict.fromkeys(s["stage"] for s in short if not s["records_in_stage"]))
    infeasible = infeasible or []
    described = "; ".join(
        [f"the codex cannot be met: {why}" for why in infeasible]
        + [f"stage {stage} has no records" for stage in empty]
        + [
            f"{s['stage']} has {s['share']:.1%} {s['value']} (min {s['min_share']:.0%})"
            for s in short
            if s["records_in_stage"]
        ][:5]
    )
    return Outcome(
        not short and not infeasible,
        described or f"every stage teaches each of {len(codex.names)} values at its minimum share",
        {
            "infeasible": infeasible,
            "uncovered": len(short),
            "uncovered_stage_values": offending_table(pl.DataFrame(short[:LISTED]))
            if short
            else "none",
        },
    )


def difficulty_rising(
    con: duckdb.DuckDBPyConnection, ordered_file: Path, stage_names: list[str]
) -> Outcome:
    """The median difficulty strictly rises from each non-empty stage to the next."""
    medians = run_sql(
        con,
        f"""SELECT stage_index, quantile_cont(difficulty, 0.5)
            FROM read_parquet({sql_literal(ordered_file)})
            GROUP BY stage_index ORDER BY stage_index""",
    )
    named = {stage_names[i] if i < len(stage_names) else str(i): round(m, 5) for i, m in medians}
    falls = [
        f"{a} (p50 {ma}) -> {b} (p50 {mb})"
        for (a, ma), (b, mb) in zip(list(named.items()), list(named.items())[1:], strict=False)
        if mb <= ma
    ]
    return Outcome(
        not falls,
        "median difficulty does not rise: " + "; ".join(falls)
        if falls
        else f"median difficulty rises across stages: {named}",
        {"p50_by_stage": named, "not_rising": falls},
    )


def no_raw_leakage(
    con: duckdb.DuckDBPyConnection, ordered_file: Path, raw_files: list[Path], keys: pl.DataFrame
) -> Outcome:
    """No training record is its raw source text (equal to it or starting with it), and every
    record is framed for its variant (`keys.framed_for_variant`, from stages/tasks/)."""
    raw_led = con.sql(
        f"""SELECT o.doc_id, o.shard, 'starts with its raw source text' AS reason,
                       left(o.text, {_EXCERPT}) AS excerpt
                FROM read_parquet({sql_literal(ordered_file)}) o
                JOIN read_parquet({sql_files(raw_files)}) r
                  ON r.doc_id = o.source_doc_id AND r.shard = o.shard
                WHERE starts_with(o.text, r.text)
                ORDER BY o.position"""
    ).pl()
    unframed = keys.filter(~pl.col("framed_for_variant").fill_null(False)).select(
        "doc_id", "shard", reason=pl.format("not framed as {}", "variant"), excerpt=pl.lit("")
    )
    bad = pl.concat([raw_led, unframed])
    return Outcome(
        bad.height == 0,
        f"{bad.height} of {keys.height} records are raw text without their framing, e.g. "
        f"{bad['doc_id'].head(3).to_list()}"
        if bad.height
        else f"all {keys.height} records are framed, none is its raw text",
        {
            "leaked": bad.height,
            "leaked_doc_ids": bad["doc_id"].head(LISTED).to_list(),
            "leaked_records": offending_table(bad.head(LISTED)),
        },
    )


def lineage_complete(
    con: duckdb.DuckDBPyConnection, ordered_file: Path, raw_files: list[Path]
) -> Outcome:
    """Every record traces to a raw document of its shard and names the prompt and model that
    made it (non-empty prompt_id, prompt_sha, teacher_backend, teacher_model)."""
    missing = " || ".join(
        f"CASE WHEN coalesce(o.{c}, '') = '' THEN '{c} ' ELSE '' END" for c in LINEAGE_FIELDS
    )
    any_missing = " OR ".join(f"coalesce(o.{c}, '') = ''" for c in LINEAGE_FIELDS)
    bad = con.sql(
        f"""SELECT o.doc_id, o.shard, o.source_doc_id,
                   trim(CASE WHEN r.doc_id IS NULL THEN 'no raw document ' ELSE '' END
                        || {missing}) AS missing
            FROM read_parquet({sql_literal(ordered_file)}) o
            LEFT JOIN (SELECT doc_id, shard FROM read_parquet({sql_files(raw_files)})) r
              ON r.doc_id = o.source_doc_id AND r.shard = o.shard
            WHERE r.doc_id IS NULL OR {any_missing}
            ORDER BY o.position"""
    ).pl()
    return Outcome(
        bad.height == 0,
        f"{bad.height} records lack lineage, e.g. "
        + ", ".join(f"{d} ({m})" for d, m in bad.select("doc_id", "missing").head(3).rows())
        if bad.height
        else "every record traces to a raw document and names its prompt and teacher",
        {
            "without_lineage": bad.height,
            "without_lineage_doc_ids": bad["doc_id"].head(LISTED).to_list(),
            "without_lineage_records": offending_table(bad.head(LISTED)),
        },
    )


def kept_reach_curriculum(
    con: duckdb.DuckDBPyConnection,
    ordered_file: Path,
    raw_files: list[Path],
    exclusions_file: Path,
    pending: list[str],
) -> Outcome:
    """Every kept raw document of the ordered shards is in the curriculum or listed, whole, with a
    reason in the exclusions table (variant 'all'); pending shards are named."""
    excuse = f"""ANTI JOIN (SELECT doc_id, shard FROM read_parquet({sql_literal(exclusions_file)})
                           WHERE variant = 'all' AND coalesce(reason, '') <> '') d
                  ON d.doc_id = r.doc_id AND d.shard = r.shard"""
    lost = con.sql(
        f"""SELECT r.doc_id, r.shard, 'kept but not in the curriculum, no reason recorded' AS reason
            FROM read_parquet({sql_files(raw_files)}) r
            ANTI JOIN (SELECT DISTINCT source_doc_id, shard
                       FROM read_parquet({sql_literal(ordered_file)})) o
              ON o.source_doc_id = r.doc_id AND o.shard = r.shard
            {excuse}
            ORDER BY r.shard, r.doc_id"""
    ).pl()
    ((kept,),) = run_sql(con, f"SELECT count(*) FROM read_parquet({sql_files(raw_files)})")
    return Outcome(
        lost.height == 0,
        f"{lost.height} of {kept} kept documents never reach the curriculum and have no "
        f"recorded reason, e.g. {lost['doc_id'].head(3).to_list()}"
        if lost.height
        else f"all {kept} kept documents of {len(raw_files)} shards reach the curriculum or have "
        "a recorded reason",
        {
            "kept": kept,
            "lost": lost.height,
            "lost_records": offending_table(lost.head(LISTED)),
            "pending_shards": pending,
        },
    )


# The closing sentence of a record: its last sentence (for a dialogue, of its last turn).
_CLOSING = r"""([^.!?\n:]+[.!?]+["')\]]*)\s*$"""
VARIETY_MIN_RECORDS = 200  # below this a corpus is too small for the shares to mean much


def text_variety(
    con: duckdb.DuckDBPyConnection,
    ordered_file: Path,
    max_closing_share: float = 0.02,
    min_distinct_closings: float = 0.5,
    max_person_share: float = 0.5,
) -> Outcome:
    """The teacher's words vary with the documents: no closing sentence is shared by more than
    `max_closing_share` of the records, at least `min_distinct_closings` of the records' closings
    are distinct, and no one person holds more than `max_person_share` of the dialogues
    (asserted from `VARIETY_MIN_RECORDS` records on)."""
    pattern = _CLOSING.replace("'", "''")
    closings = con.sql(
        f"""SELECT regexp_extract(text, '{pattern}', 1) AS closing, count(*) AS n
            FROM read_parquet({sql_literal(ordered_file)}) GROUP BY 1 ORDER BY n DESC, closing"""
    ).pl()
    people = con.sql(
        f"""SELECT regexp_extract(text, '^([^:\n]+):', 1) AS person, count(*) AS n
            FROM read_parquet({sql_literal(ordered_file)}) WHERE variant = 'social'
            GROUP BY 1 ORDER BY n DESC, person"""
    ).pl()
    records = int(closings["n"].sum())
    dialogues = int(people["n"].sum())
    top_closing = closings.row(0, named=True) if closings.height else {"closing": "", "n": 0}
    closing_share = top_closing["n"] / records if records else 0.0
    distinct = closings.height / records if records else 1.0
    person_share = people["n"].max() / dialogues if dialogues else 0.0
    problems = []
    if records >= VARIETY_MIN_RECORDS:
        if closing_share > max_closing_share:
            problems.append(
                f"{closing_share:.1%} of records close on {top_closing['closing']!r} "
                f"(max {max_closing_share:.0%})"
            )
        if distinct < min_distinct_closings:
            problems.append(f"only {distinct:.1%} of closings are distinct")
        if person_share > max_person_share:
            problems.append(
                f"{people['person'][0]} holds {person_share:.1%} of the dialogues "
                f"(max {max_person_share:.0%})"
            )
    return Outcome(
        not problems,
        "; ".join(problems)
        or f"closings: {distinct:.1%} distinct, the commonest on {closing_share:.1%} of "
        f"{records} records; dialogues: the most frequent person in {person_share:.1%}",
        {
            "records": records,
            "distinct_closing_share": round(distinct, 4),
            "top_closing_share": round(closing_share, 4),
            "top_closing": top_closing["closing"],
            "dialogues_by_person": dict(people.iter_rows()),
        },
    )


@dataclass(frozen=True)
class CurriculumGates:
    """The outcome of each quality gate on the ordered curriculum."""

    values_covered: Outcome
    difficulty_rising: Outcome
    no_raw_leakage: Outcome
    lineage_complete: Outcome
    kept_reach_curriculum: Outcome
    suite: Outcome


def curriculum_gates(
    con: duckdb.DuckDBPyConnection,
    ordered_file: Path,
    raw_files: list[Path],
    exclusions_file: Path,
    pending: list[str],
    settings: RaisingSettings,
    infeasible: list[str] | None = None,
) -> CurriculumGates:
    """Every gate on the ordered records; the key columns are read once for the GX suite and the
    framing half of the leakage check."""
    stages = settings.curriculum.stage_names
    keys = ordered_key_frame(con, ordered_file)
    return CurriculumGates(
        values_covered=value_coverage(con, ordered_file, settings.codex, stages, infeasible),
        difficulty_rising=difficulty_rising(con, ordered_file, stages),
        no_raw_leakage=no_raw_leakage(con, ordered_file, raw_files, keys),
        lineage_complete=lineage_complete(con, ordered_file, raw_files),
        kept_reach_curriculum=kept_reach_curriculum(
            con, ordered_file, raw_files, exclusions_file, pending
        ),
        suite=validate(
            keys,
            "ordered_docs",
            {"stage_names": stages, "last_stage_index": len(stages) - 1},
        ),
    )
