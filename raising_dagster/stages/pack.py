"""The training-ready corpus: ordered Parquet parts plus a manifest a training team can audit."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from raising_dagster.config import RaisingSettings, ValueCodex, model_sha
from raising_dagster.stages import plots
from raising_dagster.stages.order import run_sql
from raising_dagster.stages.tokenize import load_tokenizer, tokenize_parts

FORMAT = "raising-dagster/training-ready/v1"
APPROX_TOKEN_METHOD = "regex pieces \\w+|[^\\w\\s]"
PLOTS = ("difficulty_by_stage.png", "value_coverage.png", "stage_mix.png")


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


def build_training_corpus(
    con: duckdb.DuckDBPyConnection,
    ordered_file: Path,
    out_dir: Path,
    settings: RaisingSettings,
    input_shards: list[dict[str, Any]],
    exclusions_by_reason: dict[str, int],
) -> dict[str, Any]:
    """Write the parts, the tokenized `.bin`/`.idx`, the plots and `manifest.json` into `out_dir`
    (a staging folder); returns the manifest."""
    curriculum = settings.curriculum
    files = write_parts(con, ordered_file, out_dir, curriculum.records_per_file)
    parts = str(out_dir / "part-*.parquet")
    stages = stage_summaries(con, parts, settings.codex, curriculum.stage_names)
    for stage in stages:
        stage["approx_tokens"] = stage.pop("tokens")
    tokenized: dict[str, Any] = {"enabled": settings.tokenizer.enabled}
    if settings.tokenizer.enabled:
        tokenizer, name = load_tokenizer(settings.tokenizer.path)
        corpus = tokenize_parts(
            sorted(out_dir.glob("part-*.parquet")),
            tokenizer,
            out_dir / "tokens",
            settings.tokenizer.eos_token,
        )
        stage_of = np.array(
            [
                r[0]
                for r in run_sql(
                    con, f"SELECT stage_index FROM read_parquet('{parts}') ORDER BY position"
                )
            ],
            dtype=np.int64,
        )
        per_stage = np.bincount(stage_of, weights=corpus.sizes, minlength=len(stages))
        for stage in stages:
            stage["tokens"] = int(per_stage[stage["index"]])
        tokenized.update(
            {
                "tokenizer": name,
                "vocab_size": tokenizer.get_vocab_size(),
                "eos_token": settings.tokenizer.eos_token,
                "eos_id": None
                if settings.tokenizer.eos_token is None
                else tokenizer.token_to_id(settings.tokenizer.eos_token),
                "dtype": corpus.dtype.name,
                "bin": corpus.bin_file.name,
                "idx": corpus.idx_file.name,
                "format": "Megatron-LM MMapIndexedDataset v1 (see stages/tokenize.py)",
                "tokens": int(corpus.sizes.sum()),
            }
        )
    plots.difficulty_by_stage(con, parts, curriculum.stage_names, out_dir / "plots" / PLOTS[0])
    plots.value_coverage(stages, settings.codex.names, out_dir / "plots" / PLOTS[1])
    plots.stage_mix(con, parts, curriculum.stage_names, out_dir / "plots" / PLOTS[2])
    return {
        "format": FORMAT,
        "created_by": f"raising-dagster {version('raising-dagster')}",
        "records": sum(f["records"] for f in files),
        "tokens": tokenized.get("tokens"),
        "approx_tokens": sum(s["approx_tokens"] for s in stages),
        "approx_token_method": APPROX_TOKEN_METHOD,
        "tokenized": tokenized,
        "files": files,
        "stages": stages,
        "stage_boundaries": [s["first_position"] for s in stages],
        "curriculum": curriculum.model_dump(mode="json"),
        "config_sha": settings.config_sha(),
        "codex_sha": model_sha(settings.codex),
        "identity_sha": model_sha(settings.identity),
        "prompts": prompts_used(con, parts),
        "input_shards": input_shards,
        "exclusions_by_reason": exclusions_by_reason,
        "plots": [f"plots/{p}" for p in PLOTS],
    }
