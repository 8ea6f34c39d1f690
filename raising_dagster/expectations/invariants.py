"""Invariants the corpus must hold, as pure functions over frames and files (no Dagster here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from raising_dagster.config import CurriculumSettings
from raising_dagster.stages.order import run_sql, sql_literal
from raising_dagster.stages.tasks import BY_VARIANT

LISTED = 20  # offending records named in a check's metadata
_EXCERPT = 160


@dataclass(frozen=True)
class Outcome:
    """Whether an invariant holds, why, and the records that break it."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def records_conserved(records_in: int, kept: int, quarantined: int) -> Outcome:
    """Every record read is either kept or quarantined with a reason."""
    passed = records_in == kept + quarantined
    return Outcome(
        passed,
        f"{records_in} in = {kept} kept + {quarantined} quarantined"
        if passed
        else f"{records_in} in but {kept} kept + {quarantined} quarantined: records were lost",
        {"records_in": records_in, "kept": kept, "quarantined": quarantined},
    )


def quarantined_share(shard_stats: list[dict[str, Any]], max_share: float) -> Outcome:
    """Corpus level: quarantined records over records in, across the published shards, is at most
    `max_share` (single bad records are quarantined; a corpus mostly unreadable is refused)."""
    records_in = sum(s["records_in"] for s in shard_stats)
    quarantined = sum(s["quarantined"] for s in shard_stats)
    share = quarantined / records_in if records_in else 0.0
    by_reason: dict[str, int] = {}
    for stats in shard_stats:
        for reason, n in stats["quarantined_by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    worst = sorted(
        (s for s in shard_stats if s["records_in"]),
        key=lambda s: s["quarantined"] / s["records_in"],
        reverse=True,
    )[:LISTED]
    passed = share <= max_share
    return Outcome(
        passed,
        f"{quarantined} of {records_in} records quarantined ({share:.2%}, at most "
        f"{max_share:.0%} allowed)",
        {
            "records_in": records_in,
            "quarantined": quarantined,
            "quarantined_share": round(share, 5),
            "max_quarantined_share": max_share,
            "quarantined_by_reason": dict(sorted(by_reason.items())),
            "shards_most_quarantined": offending_table(
                pl.DataFrame(
                    [
                        {
                            "shard": s["shard"],
                            "records_in": s["records_in"],
                            "quarantined": s["quarantined"],
                        }
                        for s in worst
                    ],
                    schema={"shard": pl.String, "records_in": pl.Int64, "quarantined": pl.Int64},
                )
            ),
        },
    )


def framing_coverage(records: pl.DataFrame, variant: str, min_share: float) -> Outcome:
    """At least `min_share` of records are framed for their variant (first person, reflection,
    dialogue); the unframed ones are listed."""
    flagged = records.select("doc_id", "text", ok=BY_VARIANT[variant].framed(pl.col("text")))
    bad = flagged.filter(~pl.col("ok"))
    share = 1.0 if records.height == 0 else 1 - bad.height / records.height
    passed = share >= min_share
    return Outcome(
        passed,
        f"{share:.2%} of {records.height} {variant} records framed (required {min_share:.0%})"
        + ("" if passed else f"; {bad.height} unframed, e.g. {bad['doc_id'].head(3).to_list()}"),
        {
            "framed_share": share,
            "unframed": bad.height,
            "unframed_doc_ids": bad["doc_id"].head(LISTED).to_list(),
            "unframed_records": offending_table(
                bad.head(LISTED).select(
                    "doc_id", reason=pl.lit(f"not framed as {variant}"), excerpt=pl.col("text")
                )
            ),
        },
    )


class Markdown(str):
    """Metadata text to show as markdown (assets/common.py renders it for the UI)."""


def offending_table(rows: pl.DataFrame) -> Markdown:
    """A markdown table of offending records for a check's metadata (texts cut to an excerpt)."""
    columns = rows.columns
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows.iter_rows():
        cells = [
            str(v)[:_EXCERPT].replace("\n", " ").replace("|", "/") if v is not None else "null"
            for v in row
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return Markdown("\n".join(lines) if rows.height else "none")


def curriculum_ordered(
    con: duckdb.DuckDBPyConnection, ordered_file: Path, curriculum: CurriculumSettings
) -> Outcome:
    """Positions are 0..n-1 without gaps or repeats; pacing time never goes back along position
    (but once, where held value-heavy records start); with step pacing and no hold-back, stages
    never go back either."""
    ((n, distinct, lo, hi, stage_back, time_back),) = run_sql(
        con,
        f"""SELECT count(*), count(DISTINCT position), min(position), max(position),
                   count(*) FILTER (WHERE stage_index < prev_stage),
                   count(*) FILTER (WHERE pacing_time < prev_time)
            FROM (SELECT position, stage_index, pacing_time,
                         lag(stage_index) OVER (ORDER BY position) AS prev_stage,
                         lag(pacing_time) OVER (ORDER BY position) AS prev_time
                  FROM read_parquet({sql_literal(ordered_file)}))""",
    )
    held = curriculum.value_heavy_start > 0
    problems = []
    if n and not (distinct == n and lo == 0 and hi == n - 1):
        problems.append(
            f"positions not 0..{n - 1} contiguous (min {lo}, max {hi}, {distinct} distinct)"
        )
    if time_back > (1 if held else 0):
        problems.append(f"pacing time goes back {time_back} times along position")
    if curriculum.pacing == "step" and not held and stage_back:
        problems.append(f"{stage_back} records step back to an earlier stage")
    return Outcome(
        not problems,
        "; ".join(problems)
        or f"{n} records, positions 0..{n - 1}, {curriculum.pacing} pacing kept",
        {"records": n, "stage_regressions": stage_back, "pacing_regressions": time_back},
    )
