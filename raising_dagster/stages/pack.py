"""The training-ready corpus: ordered Parquet parts plus a manifest a training team can audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from raising_dagster.config import ValueCodex
from raising_dagster.stages.order import run_sql

FORMAT = "raising-dagster/training-ready/v1"
TOKEN_METHOD = "regex pieces \\w+|[^\\w\\s] (approximate tokens)"


def write_parts(
    con: duckdb.DuckDBPyConnection, ordered_file: Path, out_dir: Path, records_per_file: int
) -> list[dict[str, Any]]:
    """Split the ordered records into `part-NNNNN.parquet` files of at most `records_per_file`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ((total,),) = run_sql(con, f"SELECT count(*) FROM read_parquet('{ordered_file}')")
    parts = []
    for index, start in enumerate(range(0, max(total, 1), records_per_file)):
        name = f"part-{index:05d}.parquet"
        end = min(start + records_per_file, total)
        run_sql(
            con,
            f"""COPY (SELECT * FROM read_parquet('{ordered_file}')
                      WHERE position >= {start} AND position < {end} ORDER BY position)
                TO '{out_dir / name}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 20000)""",
        )
        parts.append(
            {
                "path": name,
                "records": end - start,
                "first_position": start,
                "last_position": end - 1,
            }
        )
    return parts


def stage_summaries(
    con: duckdb.DuckDBPyConnection, records_glob: str, codex: ValueCodex, stage_names: list[str]
) -> list[dict[str, Any]]:
    """Per stage: records, tokens, position range, variants, value coverage, difficulty."""
    coverage = ", ".join(
        f'avg(CASE WHEN list_contains("values", \'{v}\') THEN 1 ELSE 0 END) AS "v_{v}"'
        for v in codex.names
    )
    rows = con.execute(
        f"""SELECT stage_index, stage, count(*) AS records, sum(n_tokens) AS tokens,
                   min(position) AS first_position, max(position) AS last_position,
                   quantile_cont(difficulty, [0.1, 0.5, 0.9]) AS dq,
                   count(*) FILTER (WHERE variant = 'experiential') AS experiential,
                   count(*) FILTER (WHERE variant = 'social') AS social,
                   {coverage}
            FROM read_parquet('{records_glob}') GROUP BY ALL ORDER BY stage_index"""
    ).fetchall()
    columns = [d[0] for d in con.description]
    found = {}
    for row in rows:
        r = dict(zip(columns, row, strict=True))
        found[r["stage"]] = {
            "name": r["stage"],
            "index": r["stage_index"],
            "records": r["records"],
            "tokens": int(r["tokens"]),
            "first_position": r["first_position"],
            "last_position": r["last_position"],
            "variants": {"experiential": r["experiential"], "social": r["social"]},
            "difficulty_quantiles": dict(
                zip(("p10", "p50", "p90"), (round(q, 5) for q in r["dq"]), strict=True)
            ),
            "value_coverage": {v: round(r[f"v_{v}"], 5) for v in codex.names},
        }
    empty = {
        "records": 0,
        "tokens": 0,
        "first_position": None,
        "last_position": None,
        "variants": {"experiential": 0, "social": 0},
        "difficulty_quantiles": {},
        "value_coverage": dict.fromkeys(codex.names, 0.0),
    }
    return [found.get(n, {"name": n, "index": i, **empty}) for i, n in enumerate(stage_names)]


def prompts_used(con: duckdb.DuckDBPyConnection, records_glob: str) -> list[dict[str, Any]]:
    """Each (teacher, prompt) that made records of the corpus, with its record count."""
    rows = con.execute(
        f"""SELECT teacher_backend, teacher_model, prompt_id, prompt_sha, count(*)
            FROM read_parquet('{records_glob}') GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    keys = ("teacher_backend", "teacher_model", "prompt_id", "prompt_sha", "records")
    return [dict(zip(keys, row, strict=True)) for row in rows]
