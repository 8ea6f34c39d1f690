"""The scaffolded curriculum: a global, deterministic order over every shard, computed in DuckDB.

Only keys (ids, scores, stage, token counts) are sorted; texts are joined in and streamed to the
output by DuckDB, which spills to disk past its memory limit. The rules:
1. `stage_index`: the first stage whose `max_difficulty_quantile` covers the document's corpus-wide
   difficulty quantile (`cume_dist`, ties broken by shard and id); raised to the first stage whose
   `max_values` admits its number of values; raised to `dilemma_stage` for value dilemmas.
2. Records: every document's experiential rendering, plus its dialogue when the social stage
   wrote one (a seeded `social_share` of the documents, stages/rewrite.py `dialogue_docs`).
   Safety-flagged documents: with `safety_policy: exclude` they leave the curriculum; with
   `recontextualize` they keep their (recontextualized) experiential rendering but no dialogue.
   Either way each is listed in the exclusions table with its reason.
   Values: each record teaches its document's values (stages/values.py `weave_values`); a stage
   still short of a value's `min_share` once the corpus-wide stages are known gets it added to
   some of its records (`top_up_values`), with a sentence (or, in a dialogue, a turn of the "I")
   from `prompts/curriculum/value_link.v1` appended to their text.
3. `pacing_time` in [0, 1): when a record is placed along training. Each record has a rank
   r = (stage_index + q) / n_stages, q its difficulty percent-rank within its stage, and a seeded
   uniform u (md5 of seed, variant, shard, id). It becomes available at t(r), the inverse of the
   competence function c(t): `step` keeps whole stages in blocks, (stage_index + u) / n_stages;
   `linear` c(t) = c0 + (1 - c0) t; `root` c(t) = sqrt(c0^2 + (1 - c0^2) t), c0 the
   `initial_competence`; and is placed at t(r) + (1 - t(r)) u, so stages mix along position.
   Simple value definitions of the first stage lead the whole curriculum.
4. `value_heavy_start` s > 0: records with at least `value_heavy_min_values` values wait until the
   other records have filled a share s of the corpus's tokens (counted on the source documents).
5. `position` numbers the records 0..n-1 by (hold-back, pacing_time, md5 tie-break).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from raising_dagster.config import CurriculumSettings, IdentityCard, ValueCodex
from raising_dagster.prompts import load_prompt
from raising_dagster.schema import DUPLICATES_SCHEMA, LINEAGE_SCHEMA
from raising_dagster.stages.rewrite import stage_seed
from raising_dagster.stages.tasks.social import choose_person
from raising_dagster.stages.values import top_up_values
from raising_dagster.storage import Location, attach

_LINEAGE = ", ".join(f"r.{c}" for c in LINEAGE_SCHEMA if c != "source_doc_id")
VALUE_LINK = "curriculum/value_link.v1"
_PPM = 1_000_000
# `n_tokens` of a record: runs of word characters and single other non-space characters, the
# pieces DuckDB's `regexp_extract_all(text, '\w+|[^\w\s]')` returns (RE2's ASCII `\w`, `\s`),
# counted by Polars in an Arrow UDF, `count_pieces` (a third of the time: no list is built).
TEXT_PIECES = r"[0-9A-Za-z_]+|[^0-9A-Za-z_\t\n\f\r ]"


def run_sql(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple]:
    """Execute a statement and fetch its result whole (DuckDB 2 refuses work on a connection
    with an unfinished result)."""
    return con.execute(query).fetchall()


def sql_literal(value: str | Location) -> str:
    """A DuckDB string literal of a path or text: every path and string placed in SQL goes through
    here (a quote in `--out` must not end the literal)."""
    return "'" + str(value).replace("'", "''") + "'"


def connect(
    memory_limit: str = "2GB", temp_dir: Path | None = None, store: Location | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a memory limit, spilling to `temp_dir` (a local folder), able to
    read and write `store` when it is on S3 (storage.attach)."""
    con = duckdb.connect()
    attach(con, store)
    con.create_function(
        "count_pieces", _count_pieces, [duckdb.sqltype("VARCHAR")], "BIGINT", type="arrow"
    )
    run_sql(con, f"SET memory_limit = {sql_literal(memory_limit)}")
    run_sql(con, "SET preserve_insertion_order = false")
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True)
        run_sql(con, f"SET temp_directory = {sql_literal(temp_dir)}")
    return con


def _count_pieces(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The number of TEXT_PIECES in each text (null stays null)."""
    counts = pl.Series(texts).str.count_matches(TEXT_PIECES).cast(pl.Int64)
    return counts.to_arrow()


def sql_files(paths: Sequence[Location]) -> str:
    """A DuckDB list literal of file paths, for read_parquet."""
    if not paths:
        raise ValueError("no input files")
    return "[" + ", ".join(sql_literal(p) for p in paths) + "]"


def _stage_case(curriculum: CurriculumSettings) -> str:
    by_quantile = " ".join(
        f"WHEN dq <= {s.max_difficulty_quantile!r} THEN {i}"
        for i, s in enumerate(curriculum.stages)
    )
    last = len(curriculum.stages) - 1
    parts = [f"CASE {by_quantile} ELSE {last} END"]
    by_values = " ".join(
        f"WHEN n_values <= {s.max_values} THEN {i}"
        for i, s in enumerate(curriculum.stages)
        if s.max_values is not None
    )
    if by_values:
        first_open = next(
            (i for i, s in enumerate(curriculum.stages) if s.max_values is None), last
        )
        parts.append(f"CASE {by_values} ELSE {first_open} END")
    if curriculum.dilemma_stage is not None:
        dilemma = curriculum.stage_names.index(curriculum.dilemma_stage)
        parts.append(f"CASE WHEN is_dilemma THEN {dilemma} ELSE 0 END")
    return f"greatest({', '.join(parts)})" if len(parts) > 1 else parts[0]


def _available_at(curriculum: CurriculumSettings) -> str:
    """SQL for t(r), the pacing time from which a record of rank r may appear."""
    c0 = curriculum.initial_competence
    if curriculum.pacing == "linear":
        return f"greatest(0.0, (r - {c0!r}) / (1 - {c0!r}))"
    return f"greatest(0.0, (r * r - {c0 * c0!r}) / (1 - {c0 * c0!r}))"


def _pacing_time(curriculum: CurriculumSettings) -> str:
    if curriculum.pacing == "step":
        return f"(stage_index + u) / {len(curriculum.stages)}"
    return f"{_available_at(curriculum)} + (1 - {_available_at(curriculum)}) * u"


def _value_links(
    woven: pl.DataFrame, codex: ValueCodex, identity: IdentityCard, seed: int
) -> pl.DataFrame:
    """The text appended to each record of a document the curriculum added a value to."""
    prompt = load_prompt(VALUE_LINK)
    rows = []
    for row in woven.filter(pl.col("added_value").is_not_null()).iter_rows(named=True):
        value = codex.get(row["added_value"]).model_dump()
        person = choose_person(row["kind"], stage_seed(seed, "social", row["doc_id"]), identity)
        common = {"value": value, "topics": row["topic_words"] or [], "person": person.model_dump()}
        variant = stage_seed(seed, "value_link", row["doc_id"])
        rows.append(
            {
                "doc_id": row["doc_id"],
                "shard": row["shard"],
                "experiential": " "
                + prompt.render(**common, variant_kind="experiential", variant=variant),
                "social": "\n" + prompt.render(**common, variant_kind="social", variant=variant),
            }
        )
    schema = {
        "doc_id": pl.String,
        "shard": pl.String,
        "experiential": pl.String,
        "social": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def order_records(
    con: duckdb.DuckDBPyConnection,
    scored: list[Path],
    experiential: list[Path],
    social: list[Path],
    out_file: Path,
    curriculum: CurriculumSettings,
    codex: ValueCodex,
    identity: IdentityCard,
    duplicates: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """Write every curriculum record in order to `out_file`; returns a per-stage summary and the
    reasons the codex cannot be met in some stage (none when every stage can meet it).
    `duplicates` (stages/dedup.py) leave the curriculum. The exclusions (document, shard,
    variant, reason, detail) stay in the temp table `excluded`."""
    seed = int(curriculum.seed)
    n_stages = len(curriculum.stages)
    names = "[" + ", ".join(sql_literal(n) for n in curriculum.stage_names) + "]"
    exclude = curriculum.safety_policy == "exclude"
    hold = curriculum.value_heavy_start > 0
    dups = duplicates if duplicates is not None else pl.DataFrame(schema=DUPLICATES_SCHEMA)
    con.register("duplicate_docs", dups)
    run_sql(
        con,
        """CREATE OR REPLACE TEMP TABLE duplicate AS
           SELECT shard, doc_id, reason,
                  'of ' || kept_shard || '/' || kept_doc_id
                  || ' (similarity ' || round(similarity, 4) || ')' AS detail
           FROM duplicate_docs""",
    )
    con.unregister("duplicate_docs")
    run_sql(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE keyed AS
        WITH s AS (
            SELECT doc_id, shard, kind, difficulty, is_dilemma, is_value_definition, n_values,
                   n_tokens, safety_flag, "values", value_sources, value_evidence, detected_values,
                   topic_words,
                   cume_dist() OVER (ORDER BY difficulty, shard, doc_id) AS dq
            FROM read_parquet({sql_files(scored)})
        ), d AS (SELECT DISTINCT doc_id, shard FROM read_parquet({sql_files(social)}))
        SELECT s.*, {_stage_case(curriculum)} AS stage_index,
               d.doc_id IS NOT NULL AS has_dialogue
        FROM s LEFT JOIN d ON d.doc_id = s.doc_id AND d.shard = s.shard
        ANTI JOIN duplicate x ON x.doc_id = s.doc_id AND x.shard = s.shard
        """,
    )
    keys = con.sql(
        f"""SELECT doc_id, shard, kind, stage_index, "values", value_sources, value_evidence,
                   topic_words,
                   CASE WHEN {exclude} AND safety_flag IS NOT NULL THEN 0
                        ELSE 1 + CAST(has_dialogue AND safety_flag IS NULL AS INTEGER)
                   END AS records
            FROM keyed ORDER BY shard, doc_id"""
    ).pl()
    woven, problems = top_up_values(keys, codex, curriculum.stage_names, seed)
    links = _value_links(woven, codex, identity, seed)
    con.register("woven_keys", woven.drop("topic_words", "records"))
    con.register("value_links", links)
    run_sql(
        con,
        """CREATE OR REPLACE TEMP TABLE taught AS
           SELECT w.doc_id, w.shard, w."values", w.value_sources, w.value_evidence,
                  l.experiential AS link_experiential, l.social AS link_social
           FROM woven_keys w
           LEFT JOIN value_links l ON l.doc_id = w.doc_id AND l.shard = w.shard""",
    )
    con.unregister("woven_keys")
    con.unregister("value_links")
    run_sql(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE excluded AS
        SELECT shard, doc_id, 'all' AS variant, 'safety_excluded:' || safety_flag AS reason,
               NULL AS detail
        FROM keyed WHERE {exclude} AND safety_flag IS NOT NULL
        UNION ALL
        SELECT shard, doc_id, 'social', 'safety_recontextualized_no_dialogue:' || safety_flag, NULL
        FROM keyed WHERE NOT {exclude} AND safety_flag IS NOT NULL
        UNION ALL
        SELECT shard, doc_id, 'all', reason, detail FROM duplicate
        """,
    )
    run_sql(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE placed AS
        WITH r0 AS (
            SELECT k.* EXCLUDE ("values"), t."values", v.variant,
                   (md5_number('{seed}:order:' || v.variant || ':' || k.shard || '/' || k.doc_id)
                    % {_PPM}) / {_PPM}.0 AS u
            FROM keyed k
            JOIN taught t ON t.doc_id = k.doc_id AND t.shard = k.shard
            CROSS JOIN (VALUES ('experiential'), ('social')) v(variant)
            WHERE (safety_flag IS NULL OR (NOT {exclude} AND v.variant = 'experiential'))
              AND (v.variant = 'experiential' OR has_dialogue)
        ), r1 AS (
            SELECT *, (stage_index + percent_rank() OVER (
                PARTITION BY stage_index ORDER BY difficulty, shard, doc_id, variant)) / {n_stages}
                AS r
            FROM r0
        ), r2 AS (
            SELECT *,
                   CASE WHEN is_value_definition AND stage_index = 0 THEN 0.0
                        ELSE {_pacing_time(curriculum)} END AS pacing_time,
                   {hold} AND n_values >= {curriculum.value_heavy_min_values} AS held
            FROM r1
        ), r3 AS (
            SELECT *,
                   NOT held AND coalesce(sum(CASE WHEN held THEN 0 ELSE n_tokens END) OVER (
                       ORDER BY held, pacing_time, md5('{seed}:' || variant || shard || doc_id)
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                   < {curriculum.value_heavy_start!r} * sum(n_tokens) OVER () AS before_hold
            FROM r2
        )
        SELECT *, row_number() OVER (
            ORDER BY before_hold DESC, pacing_time, md5('{seed}:' || variant || shard || doc_id)
        ) - 1 AS position
        FROM r3
        """,
    )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    text = """r.text || coalesce(CASE p.variant WHEN 'social' THEN t.link_social
                                                 ELSE t.link_experiential END, '')"""
    run_sql(
        con,
        f"""
        COPY (
            SELECT p.position, {names}[p.stage_index + 1] AS stage, p.stage_index, p.variant,
                   {text} AS text,
                   r.shard || '/' || r.source_doc_id || '#' || p.variant AS doc_id,
                   r.source_doc_id, r.shard,
                   r.kind, p.difficulty, t."values", t.value_sources, p.detected_values,
                   t.value_evidence, round(p.pacing_time, 6) AS pacing_time,
                   count_pieces({text}) AS n_tokens, {_LINEAGE}
            FROM placed p
            JOIN taught t ON t.doc_id = p.doc_id AND t.shard = p.shard
            JOIN (
                SELECT 'experiential' AS variant, * FROM read_parquet({sql_files(experiential)})
                UNION ALL BY NAME
                SELECT 'social' AS variant, * FROM read_parquet({sql_files(social)})
            ) r ON r.doc_id = p.doc_id AND r.shard = p.shard AND r.variant = p.variant
            ORDER BY p.position
        ) TO {sql_literal(tmp)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 20000)
        """,
    )
    ((placed, written),) = run_sql(
        con,
        f"""SELECT (SELECT count(*) FROM placed),
                   (SELECT count(*) FROM read_parquet({sql_literal(tmp)}))""",
    )
    if placed != written:
        missing = run_sql(
            con,
            f"""SELECT p.shard, p.doc_id, p.variant FROM placed p
                ANTI JOIN read_parquet({sql_literal(tmp)}) o
                ON o.source_doc_id = p.doc_id AND o.shard = p.shard AND o.variant = p.variant
                LIMIT 5""",
        )
        tmp.unlink()
        raise ValueError(
            f"{placed - written} curriculum records have no rendering (stale or missing upstream "
            f"partitions?), e.g. {missing}; re-materialize those shards"
        )
    tmp.replace(out_file)
    summary = con.sql(
        f"""SELECT stage_index, {names}[stage_index + 1] AS stage, variant, count(*) AS records,
                   min(position) AS first_position, max(position) AS last_position
            FROM placed GROUP BY ALL ORDER BY stage_index, variant"""
    ).pl()
    return summary, problems
