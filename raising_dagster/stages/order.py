"""The scaffolded curriculum: a global, deterministic order over every shard, computed in DuckDB.

Only keys (ids, scores, stage) are sorted; texts are joined in and streamed to the output file by
DuckDB, which spills to disk past its memory limit. Rules, in order:
1. `stage_index` from the document's difficulty quantile over the whole corpus (`cume_dist`, ties
   broken by shard and id): the first stage whose `max_difficulty_quantile` covers it.
2. A document flagged as a value dilemma goes at least to the configured `dilemma_stage`.
3. Records: every document's experiential rendering, plus its dialogue for a seeded `social_share`.
4. Inside a stage: in the first stage, simple value definitions lead; then a seeded shuffle
   (md5 of seed, variant, shard and id). `position` numbers the records 0..n-1.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from raising_dagster.config import CurriculumSettings
from raising_dagster.schema import LINEAGE_SCHEMA

_LINEAGE = ", ".join(f"r.{c}" for c in LINEAGE_SCHEMA if c != "source_doc_id")
_PPM = 1_000_000


def run_sql(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple]:
    """Execute a statement and fetch its result whole (DuckDB 2 refuses work on a connection
    with an unfinished result)."""
    return con.execute(query).fetchall()


def connect(memory_limit: str = "2GB", temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a memory limit, spilling to `temp_dir`."""
    con = duckdb.connect()
    run_sql(con, f"SET memory_limit = '{memory_limit}'")
    run_sql(con, "SET preserve_insertion_order = false")
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True)
        run_sql(con, f"SET temp_directory = '{temp_dir}'")
    return con


def _stage_case(curriculum: CurriculumSettings) -> str:
    arms = " ".join(
        f"WHEN dq <= {s.max_difficulty_quantile!r} THEN {i}"
        for i, s in enumerate(curriculum.stages)
    )
    stage = f"CASE {arms} ELSE {len(curriculum.stages) - 1} END"
    if curriculum.dilemma_stage is None:
        return stage
    dilemma = curriculum.stage_names.index(curriculum.dilemma_stage)
    return f"greatest({stage}, CASE WHEN is_dilemma THEN {dilemma} ELSE 0 END)"


def sql_files(paths: list[Path]) -> str:
    """A DuckDB list literal of file paths, for read_parquet."""
    if not paths:
        raise ValueError("no input files")
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def order_records(
    con: duckdb.DuckDBPyConnection,
    scored: list[Path],
    experiential: list[Path],
    social: list[Path],
    out_file: Path,
    curriculum: CurriculumSettings,
) -> pl.DataFrame:
    """Write every curriculum record in order to `out_file`; returns a per-stage summary."""
    seed = int(curriculum.seed)
    share_ppm = round(curriculum.social_share * _PPM)
    names = "[" + ", ".join(f"'{n}'" for n in curriculum.stage_names) + "]"
    run_sql(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE placed AS
        WITH s AS (
            SELECT doc_id, shard, difficulty, is_dilemma, is_value_definition, "values",
                   cume_dist() OVER (ORDER BY difficulty, shard, doc_id) AS dq
            FROM read_parquet({sql_files(scored)})
        ), k AS (
            SELECT *, {_stage_case(curriculum)} AS stage_index FROM s
        ), r AS (
            SELECT k.*, v.variant FROM k CROSS JOIN (VALUES ('experiential'), ('social')) v(variant)
            WHERE v.variant = 'experiential'
               OR md5_number('{seed}:social:' || shard || '/' || doc_id) % {_PPM} < {share_ppm}
        )
        SELECT *, row_number() OVER (
            ORDER BY stage_index,
                     (is_value_definition AND stage_index = 0) DESC,
                     md5('{seed}:order:' || variant || ':' || shard || '/' || doc_id)
        ) - 1 AS position
        FROM r
        """,
    )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    run_sql(
        con,
        f"""
        COPY (
            SELECT p.position, {names}[p.stage_index + 1] AS stage, p.stage_index, p.variant,
                   r.text, r.source_doc_id || '#' || p.variant AS doc_id, r.source_doc_id, r.shard,
                   r.kind, p.difficulty, p."values",
                   len(regexp_extract_all(r.text, '\\w+|[^\\w\\s]')) AS n_tokens, {_LINEAGE}
            FROM placed p
            JOIN (
                SELECT 'experiential' AS variant, * FROM read_parquet({sql_files(experiential)})
                UNION ALL BY NAME
                SELECT 'social' AS variant, * FROM read_parquet({sql_files(social)})
            ) r ON r.doc_id = p.doc_id AND r.shard = p.shard AND r.variant = p.variant
            ORDER BY p.position
        ) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 20000)
        """,
    )
    ((placed, written),) = run_sql(
        con, f"SELECT (SELECT count(*) FROM placed), (SELECT count(*) FROM read_parquet('{tmp}'))"
    )
    if placed != written:
        missing = run_sql(
            con,
            f"""SELECT p.shard, p.doc_id, p.variant FROM placed p ANTI JOIN read_parquet('{tmp}') o
                ON o.source_doc_id = p.doc_id AND o.shard = p.shard AND o.variant = p.variant
                LIMIT 5""",
        )
        tmp.unlink()
        raise ValueError(
            f"{placed - written} curriculum records have no rendering (stale or missing upstream "
            f"partitions?), e.g. {missing}; re-materialize those shards"
        )
    tmp.replace(out_file)
    return con.sql(
        f"""SELECT stage_index, {names}[stage_index + 1] AS stage, variant, count(*) AS records,
                   min(position) AS first_position, max(position) AS last_position
            FROM placed GROUP BY ALL ORDER BY stage_index, variant"""
    ).pl()
