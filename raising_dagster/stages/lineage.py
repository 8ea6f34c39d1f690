"""Record-level lineage of a publication, and the trace of one record through it.

`build_lineage` writes one table, `audit/lineage.parquet` in the publication, with one row per
source document of the curriculum and stage (`raw`, `scored`, `first_person`, `experiential`,
`social`): the stage's text, the Dagster run that wrote it, and how it was made (teacher backend
and model, the model tried, prompt id and hash, sampling, seed, attempts, fallback reason, cache
hit, grounding, input hash); for `raw` where it came from (shard, line, file, file hash); for
`scored` its scores as JSON. The per-shard files of the store are overwritten by the next run;
this table is the publication's own copy, so a past publication can still be traced. A training
record links to it through (`shard`, `source_doc_id`).

`trace` answers for a training record (`doc_id`), a position, or a raw document id: the raw text
and where it came from, each stage's output and how it was made, the scores, and the training
records it became (stage, position, variant, values), with the publication.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import yaml

from raising_dagster.config import RaisingSettings
from raising_dagster.schema import RUN_ID
from raising_dagster.stages.order import run_sql, sql_literal
from raising_dagster.storage import Location, attach
from raising_dagster.teacher.base import LINEAGE_FIELDS, STAGES

AUDIT_DIR = "audit"
LINEAGE_FILE = f"{AUDIT_DIR}/lineage.parquet"
STAGE_ORDER = ("raw", "scored", *STAGES)
SCORE_FIELDS = (
    "difficulty",
    "fk_grade",
    "lexical_diversity",
    "rare_word_rate",
    "compression_ratio",
    "n_tokens",
    "n_words",
    "score_flags",
    "detected_values",
    "value_strengths",
    "values",
    "value_sources",
    "value_evidence",
    "is_dilemma",
    "is_value_definition",
    "safety_flag",
    "topic_words",
)
# Every column of the lineage table, typed, so that files written before a column existed (no
# `run_id` before issue 11) still union into it.
_COLUMNS = {
    "shard": "VARCHAR",
    "source_doc_id": "VARCHAR",
    "stage": "VARCHAR",
    "stage_index": "INTEGER",
    "text": "VARCHAR",
    RUN_ID: "VARCHAR",
    "file": "VARCHAR",
    "file_sha": "VARCHAR",
    "line": "BIGINT",
    "title": "VARCHAR",
    "kind": "VARCHAR",
    "input_sha": "VARCHAR",
    "scores": "VARCHAR",
    "teacher_backend": "VARCHAR",
    "teacher_model": "VARCHAR",
    "tried_backend": "VARCHAR",
    "tried_model": "VARCHAR",
    "frame_id": "VARCHAR",
    "prompt_id": "VARCHAR",
    "prompt_sha": "VARCHAR",
    "sampling": "VARCHAR",
    "seed": "BIGINT",
    "cache_hit": "BOOLEAN",
    "attempts": "INTEGER",
    "fallback_reason": "VARCHAR",
    "grounding": "INTEGER",
}
_TEXT_SHOWN = 600
_ROW_GROUP = 20_000


def _typed(select: str) -> str:
    """A select unioned by name with an empty row of every column, cast to the table's types."""
    empty = ", ".join(f"NULL::{t} AS {c}" for c, t in _COLUMNS.items())
    casts = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in _COLUMNS.items())
    return f"""SELECT {casts} FROM (
        SELECT {empty} WHERE false UNION ALL BY NAME {select})"""


def build_lineage(
    con: duckdb.DuckDBPyConnection,
    ordered_file: Path,
    shard_files: dict[str, dict[str, Location]],
    shard_stats: list[dict[str, Any]],
    out_file: Path,
) -> int:
    """Write the lineage table of the documents in `ordered_file` (module doc) to `out_file` (a
    local file); `shard_files` maps each shard to its files by asset (`raw_docs`, `scored_docs`,
    each framing stage's). Ordered by shard, document and stage, written one shard at a time
    through one Parquet writer, so memory holds one shard's texts, never the corpus's (all of them
    sorted at once ran DuckDB out of its 2 GB at 200k documents). Returns the rows written."""
    files = {
        s["shard"]: {"file": s.get("file"), "file_sha": s.get("content_sha")} for s in shard_stats
    }
    run_sql(
        con, "CREATE OR REPLACE TEMP TABLE shard_files (shard VARCHAR, file VARCHAR, sha VARCHAR)"
    )
    if files:
        con.executemany(
            "INSERT INTO shard_files VALUES (?, ?, ?)",
            [(k, v["file"], v["file_sha"]) for k, v in files.items()],
        )
    run_sql(
        con,
        f"""CREATE OR REPLACE TEMP TABLE lineage_docs AS
            SELECT DISTINCT shard, source_doc_id FROM read_parquet({sql_literal(ordered_file)})
            ORDER BY shard""",
    )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    empty = con.sql(f"SELECT * FROM ({_typed('SELECT 1 AS shard WHERE false')})")
    schema = empty.to_arrow_table().schema
    rows = 0
    with pq.ParquetWriter(out_file, schema, compression="zstd") as writer:
        for shard in sorted(shard_files):  # byte order of UTF-8: DuckDB's order of VARCHAR
            union = _shard_lineage(shard, shard_files[shard])
            batches = con.sql(
                f"SELECT * FROM ({union}) ORDER BY source_doc_id, stage_index"
            ).to_arrow_reader(_ROW_GROUP)
            for batch in batches:
                writer.write_batch(batch, row_group_size=_ROW_GROUP)
                rows += batch.num_rows
    return rows


def _shard_lineage(shard: str, files: dict[str, Location]) -> str:
    """The lineage rows of one shard's documents in the curriculum, from each stage's file."""
    docs = f"(SELECT source_doc_id FROM lineage_docs WHERE shard = {sql_literal(shard)})"
    scores = ", ".join(f"'{f}': s.{f}" for f in SCORE_FIELDS)
    lineage = ", ".join(f"r.{c}" for c in LINEAGE_FIELDS)
    selects = [
        f"""SELECT r.shard, r.doc_id AS source_doc_id, 'raw' AS stage, 0 AS stage_index, r.text,
                   r.* EXCLUDE (shard, doc_id, text, meta, normalized, redactions),
                   f.file, f.sha AS file_sha
            FROM read_parquet({sql_literal(files["raw_docs"])}) r
            SEMI JOIN {docs} d ON d.source_doc_id = r.doc_id
            LEFT JOIN shard_files f ON f.shard = r.shard""",
        f"""SELECT s.shard, s.doc_id AS source_doc_id, 'scored' AS stage, 1 AS stage_index,
                   s.kind, to_json({{{scores}}}) AS scores,
                   s.* EXCLUDE (shard, doc_id, kind, {", ".join(SCORE_FIELDS)})
            FROM read_parquet({sql_literal(files["scored_docs"])}) s
            SEMI JOIN {docs} d ON d.source_doc_id = s.doc_id""",
    ]
    for index, stage in enumerate(STAGES, start=2):
        selects.append(
            f"""SELECT r.shard, r.doc_id AS source_doc_id, '{stage}' AS stage,
                       {index} AS stage_index, r.text, r.kind, r.title, r.input_sha, {lineage},
                       r.* EXCLUDE (shard, doc_id, source_doc_id, text, kind, title, input_sha,
                                    {", ".join(LINEAGE_FIELDS)})
                FROM read_parquet({sql_literal(files[f"{stage}_docs"])}) r
                SEMI JOIN {docs} d ON d.source_doc_id = r.doc_id"""
        )
    return "\nUNION ALL BY NAME\n".join(f"({_typed(s)})" for s in selects)


class TraceNotFound(LookupError):
    """The id names no record of the publication (the message says what was searched)."""


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    result = con.execute(query)
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def _sources(
    con: duckdb.DuckDBPyConnection, publication: Location, ident: str, data: str
) -> list[tuple[str, str]]:
    """The (shard, source_doc_id) pairs an id names: a position, a training doc_id, a raw
    document id (`shard/doc_id` or a bare id, which may name documents of several shards)."""
    if ident.isdigit():
        where = f"position = {int(ident)}"
    elif "#" in ident:
        where = f"doc_id = {sql_literal(ident)}"
    else:
        shard, _, doc = ident.partition("/")
        bare = f"source_doc_id = {sql_literal(ident)}"
        where = (
            f"(({bare}) OR (shard = {sql_literal(shard)} AND source_doc_id = {sql_literal(doc)}))"
            if doc
            else bare
        )
    found = run_sql(
        con, f"SELECT DISTINCT shard, source_doc_id FROM read_parquet({data}) WHERE {where}"
    )
    if not found and not ident.isdigit() and "#" not in ident:
        lineage = sql_literal(publication / LINEAGE_FILE)
        shard, _, doc = ident.partition("/")
        found = run_sql(
            con,
            f"""SELECT DISTINCT shard, source_doc_id FROM read_parquet({lineage})
                WHERE source_doc_id = {sql_literal(ident)}
                   OR (shard = {sql_literal(shard)} AND source_doc_id = {sql_literal(doc)})""",
        )
    return sorted((s, d) for s, d in found)


def _left_out(manifest: dict[str, Any], ident: str) -> list[dict[str, Any]]:
    """Withdrawals and left-out shards of the manifest that match an id not in the corpus."""
    shard, _, doc = ident.partition("/")
    doc = doc.split("#")[0] if doc else ident.split("#")[0]
    matches = [
        w
        for w in manifest.get("withdrawals", [])
        if w.get("doc_id") == doc and (not shard or not ident.count("/") or w["shard"] == shard)
    ]
    matches += [s for s in manifest.get("left_out_shards", []) if s["shard"] == shard]
    return matches


def trace(publication: Location, ident: str) -> dict[str, Any]:
    """The chain of one document through a publication (module doc); raises TraceNotFound."""
    manifest = json.loads((publication / "manifest.json").read_text(encoding="utf-8"))
    info_file = publication / "publication.json"
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    data = sql_literal(publication / "data" / "*.parquet")
    con = duckdb.connect()
    attach(con, publication)
    try:
        sources = _sources(con, publication, ident, data)
        if not sources:
            left_out = _left_out(manifest, ident)
            why = (
                "; ".join(
                    f"{w['shard']}{'/' + w['doc_id'] if w.get('doc_id') else ''}: {w['reason']}"
                    for w in left_out
                )
                if left_out
                else "no training record, position or raw document has this id"
            )
            raise TraceNotFound(f"{ident!r} is not in publication {publication.name}: {why}")
        chains = []
        for shard, doc in sources:
            key = f"shard = {sql_literal(shard)} AND source_doc_id = {sql_literal(doc)}"
            stages = _rows(
                con,
                f"""SELECT * FROM read_parquet({sql_literal(publication / LINEAGE_FILE)})
                    WHERE {key} ORDER BY stage_index""",
            )
            records = _rows(
                con,
                f"""SELECT position, doc_id, stage, variant, difficulty, "values", value_sources,
                           detected_values, value_evidence, pacing_time, text, teacher_backend,
                           teacher_model, prompt_id, prompt_sha, fallback_reason
                    FROM read_parquet({data}) WHERE {key} ORDER BY position""",
            )
            chains.append(_chain(shard, doc, stages, records))
    finally:
        con.close()
    return {
        "query": ident,
        "publication": {
            "id": info.get("id", publication.name),
            "path": str(publication),
            "published_at": info.get("published_at"),
            "records": manifest["records"],
        },
        "documents": chains,
    }


def _chain(
    shard: str, doc: str, stages: list[dict[str, Any]], records: list[dict[str, Any]]
) -> dict[str, Any]:
    by_stage = {s["stage"]: s for s in stages}
    raw = by_stage.get("raw", {})
    scored = by_stage.get("scored", {})
    made = [
        {k: v for k, v in s.items() if k not in ("shard", "source_doc_id", "scores", "file")}
        for s in stages
        if s["stage"] in STAGES
    ]
    return {
        "shard": shard,
        "source_doc_id": doc,
        "source": {
            "file": raw.get("file"),
            "file_sha": raw.get("file_sha"),
            "line": raw.get("line"),
            "title": raw.get("title"),
            "kind": raw.get("kind"),
            "input_sha": raw.get("input_sha"),
            RUN_ID: raw.get(RUN_ID),
            "text": raw.get("text"),
        },
        "scores": {
            **(json.loads(scored["scores"]) if scored.get("scores") else {}),
            RUN_ID: scored.get(RUN_ID),
        },
        "stages": made,
        "training_records": records,
    }


def _cut(text: str | None, full: bool) -> str:
    if text is None:
        return "(none)"
    return text if full or len(text) <= _TEXT_SHOWN else text[:_TEXT_SHOWN] + " [...]"


def format_trace(found: dict[str, Any], full: bool = False) -> str:
    """The trace as text for a person: source, scores, each stage, the training records."""
    pub = found["publication"]
    lines = [f"publication {pub['id']} ({pub['records']} records) at {pub['path']}"]
    for chain in found["documents"]:
        src = chain["source"]
        lines += [
            "",
            f"== raw document {chain['shard']}/{chain['source_doc_id']}",
            f"   from {src['file']} line {src['line']} (file sha256 {src['file_sha']}); "
            f"kind {src['kind']}; title {src['title']!r}",
            f"   read by Dagster run {src[RUN_ID]} (UI: /runs/{src[RUN_ID]})",
            "   " + _cut(src["text"], full).replace("\n", "\n   "),
        ]
        scores = chain["scores"]
        lines += [
            f"== scored (run {scores.get(RUN_ID)})",
            f"   difficulty {scores.get('difficulty')}, grade {scores.get('fk_grade')}, "
            f"MTLD {scores.get('lexical_diversity')}, rare words {scores.get('rare_word_rate')}",
            f"   detected values {scores.get('detected_values')}; taught {scores.get('values')} "
            f"({scores.get('value_sources')})",
            f"   evidence {scores.get('value_evidence')}",
        ]
        for stage in chain["stages"]:
            made = f"{stage['teacher_backend']}/{stage['teacher_model']}"
            if stage.get("tried_backend"):
                made += f" (tried {stage['tried_backend']}/{stage['tried_model']})"
            lines += [
                f"== {stage['stage']} by {made}, prompt {stage['prompt_id']} "
                f"sha {str(stage['prompt_sha'])[:16]}, seed {stage['seed']}, "
                f"attempts {stage['attempts']}, fallback {stage['fallback_reason'] or 'none'}, "
                f"cache {'hit' if stage['cache_hit'] else 'miss'} (run {stage[RUN_ID]})",
                "   " + _cut(stage["text"], full).replace("\n", "\n   "),
            ]
        for record in chain["training_records"]:
            lines += [
                f"== training record {record['doc_id']}: position {record['position']}, "
                f"stage {record['stage']}, variant {record['variant']}, values "
                f"{list(record['values'] or [])} ({list(record['value_sources'] or [])})",
                "   " + _cut(record["text"], full).replace("\n", "\n   "),
            ]
    return "\n".join(lines)


AUDIT_COPIES = ("codex.yaml", "identity.yaml", "settings.yaml")


def write_audit_copies(settings: RaisingSettings, folder: Path) -> dict[str, str]:
    """Copies (YAML) of the codex, identity card and settings a publication used, in `folder`;
    returns each copy's path in the publication with its sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "codex.yaml": settings.codex.model_dump(mode="json"),
        "identity.yaml": settings.identity.model_dump(mode="json"),
        "settings.yaml": settings.model_dump(mode="json"),
    }
    hashes = {}
    for name in AUDIT_COPIES:
        text = yaml.safe_dump(contents[name], sort_keys=False, allow_unicode=True)
        (folder / name).write_text(text, encoding="utf-8")
        hashes[f"{AUDIT_DIR}/{name}"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return hashes


def stage_runs(con: duckdb.DuckDBPyConnection, lineage_file: Path) -> dict[str, dict[str, list]]:
    """shard -> stage -> the Dagster runs that wrote its records, from a lineage table."""
    runs: dict[str, dict[str, list]] = {}
    for shard, stage, ids in run_sql(
        con,
        f"""SELECT shard, stage, list_sort(list(DISTINCT run_id) FILTER (WHERE run_id IS NOT NULL))
            FROM read_parquet({sql_literal(lineage_file)})
            GROUP BY shard, stage ORDER BY shard""",
    ):
        runs.setdefault(shard, {})[stage] = ids
    return runs
