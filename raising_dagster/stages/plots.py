"""Plots a person would rather look at than read: PNGs of the curriculum, from DuckDB aggregates.

matplotlib is imported when the first plot is drawn (`_figure`), not with this module: it costs
about a second, and the processes that only raise shards never draw."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from raising_dagster.stages.order import run_sql, sql_literal

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_BINS = 40


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def difficulty_by_stage(
    con: duckdb.DuckDBPyConnection, records: str, stages: list[str], out: Path
) -> Path:
    """Histogram of difficulty per curriculum stage."""
    rows = run_sql(
        con,
        f"""SELECT stage_index, least(floor(difficulty * {_BINS}), {_BINS - 1}) AS bin, count(*)
            FROM read_parquet({sql_literal(records)}) GROUP BY ALL ORDER BY ALL""",
    )
    fig = _figure(7, 3.5)
    ax = fig.subplots()
    for index, name in enumerate(stages):
        counts = [0] * _BINS
        for stage, bin_, count in rows:
            if stage == index:
                counts[int(bin_)] = count
        ax.stairs(counts, [i / _BINS for i in range(_BINS + 1)], label=name, fill=True, alpha=0.5)
    ax.set(xlabel="difficulty", ylabel="records", title="Difficulty per curriculum stage")
    ax.legend()
    return _save(fig, out)


def value_coverage(stage_summaries: list[dict[str, Any]], values: list[str], out: Path) -> Path:
    """Heatmap: the share of each stage's records that express each codex value."""
    grid = [[s["value_coverage"].get(v, 0.0) for v in values] for s in stage_summaries]
    fig = _figure(1 + 0.8 * len(values), 1 + 0.6 * len(stage_summaries))
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(values)), values, rotation=45, ha="right")
    ax.set_yticks(range(len(stage_summaries)), [s["name"] for s in stage_summaries])
    for i, row in enumerate(grid):
        for j, share in enumerate(row):
            ax.text(
                j,
                i,
                f"{share:.0%}",
                ha="center",
                va="center",
                color="white" if share < 0.6 else "black",
                fontsize=8,
            )
    fig.colorbar(image, ax=ax, label="share of records")
    ax.set_title("Value coverage per stage")
    return _save(fig, out)


def stage_mix(
    con: duckdb.DuckDBPyConnection,
    records: str,
    stages: list[str],
    out: Path,
    phase_starts: list[int] | None = None,
) -> Path:
    """Stacked shares of each stage along the training position; dashed lines where a new phase
    (a token prefix, trained after the previous one) starts."""
    rows = run_sql(
        con,
        f"""WITH r AS (SELECT position, stage_index, count(*) OVER () AS n
                       FROM read_parquet({sql_literal(records)}))
            SELECT least(floor(position * {_BINS} / n), {_BINS - 1}) AS bin, stage_index, count(*)
            FROM r GROUP BY ALL ORDER BY ALL""",
    )
    totals = [0] * _BINS
    shares = [[0.0] * _BINS for _ in stages]
    for bin_, _, count in rows:
        totals[int(bin_)] += count
    for bin_, stage, count in rows:
        shares[stage][int(bin_)] = count / totals[int(bin_)]
    fig = _figure(7, 3.5)
    ax = fig.subplots()
    ax.stackplot([(i + 0.5) / _BINS for i in range(_BINS)], shares, labels=stages, alpha=0.8)
    n = sum(totals)
    for start in phase_starts or []:
        ax.axvline(start / n, color="black", linestyle="--", linewidth=1)
    ax.set(
        xlabel="position (share of records)",
        ylabel="share of stage",
        ylim=(0, 1),
        title="Stage mix along the curriculum (dashed: a new phase starts)",
    )
    ax.legend(loc="upper left")
    return _save(fig, out)


def _save(fig: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    return out
