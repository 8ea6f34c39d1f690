"""The training-ready corpus, cut into phases a trainer may shuffle inside but must train in order:
Parquet parts and one Megatron token prefix per phase, a dataset card whose configs are the
phases, the tokenizer, plots, and a manifest a training team can audit."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from tokenizers import Tokenizer

from raising_dagster.config import CurriculumSettings, RaisingSettings, ValueCodex, model_sha
from raising_dagster.stages import card, plots
from raising_dagster.stages.order import run_sql, sql_literal
from raising_dagster.stages.tokenize import (
    FastBpe,
    FastBpeMismatch,
    export_tokenizer,
    fast_bpe,
    load_tokenizer,
    tokenize_dtype,
    tokenize_parts,
)

FORMAT = "raising-dagster/training-ready/v2"
DATA_DIR = "data"
TOKENS_DIR = "tokens"
TOKENIZER_DIR = "tokenizer"
ORDER_NOTE = (
    "Records are in curriculum order (position 0..n-1), simple to complex. Train the phases one "
    "after another in the order listed; shuffling is harmless only within a phase. A single "
    "token prefix for the whole corpus, or all phase prefixes in one Megatron run (a blend), loses "
    "the order: Megatron's GPTDataset always shuffles documents and samples within what it is "
    "given."
)
APPROX_TOKEN_METHOD = "regex pieces \\w+|[^\\w\\s]"
PLOTS = ("difficulty_by_stage.png", "value_coverage.png", "stage_mix.png")


@dataclass(frozen=True)
class Phase:
    """A contiguous run of curriculum positions a trainer may shuffle within, but not across: one
    Megatron `.bin/.idx` prefix, one Hugging Face config, its own Parquet parts."""

    index: int
    name: str
    stages: list[str]
    records_by_stage: dict[str, int]
    first_position: int
    last_position: int

    @property
    def records(self) -> int:
        return self.last_position - self.first_position + 1


def stage_thresholds(curriculum: CurriculumSettings) -> list[float]:
    """The pacing times t(k / n), k = 1..n-1, from which stage k may appear (the inverse of the
    competence function of `stages/order.py`); empty for step pacing."""
    n, c0 = len(curriculum.stages), curriculum.initial_competence
    if curriculum.pacing == "step":
        return []
    if curriculum.pacing == "linear":
        return [max(0.0, (k / n - c0) / (1 - c0)) for k in range(1, n)]
    return [max(0.0, ((k / n) ** 2 - c0 * c0) / (1 - c0 * c0)) for k in range(1, n)]


def curriculum_phases(
    con: duckdb.DuckDBPyConnection, ordered_file: Path, curriculum: CurriculumSettings
) -> list[Phase]:
    """Split the ordered records into phases, maximal runs of positions with one phase key: the
    stage with `step` pacing (so a phase is a stage), else the number of stage thresholds the
    pacing time has passed (phase k: from when stage k may appear until stage k + 1 may). A run
    that starts over (records held back by `value_heavy_start`) is a phase of its own."""
    thresholds = stage_thresholds(curriculum)
    key = (
        "stage_index"
        if not thresholds
        else " + ".join(f"(pacing_time >= {t!r})::INTEGER" for t in thresholds)
    )
    rows = run_sql(
        con,
        f"""
        WITH k AS (
            SELECT position, stage_index, {key} AS phase_key
            FROM read_parquet({sql_literal(ordered_file)})
        ), b AS (
            SELECT *, (phase_key IS DISTINCT FROM lag(phase_key) OVER (ORDER BY position))::INTEGER
                      AS starts
            FROM k
        ), g AS (
            SELECT *, sum(starts) OVER (ORDER BY position ROWS UNBOUNDED PRECEDING) - 1 AS phase
            FROM b
        )
        SELECT phase, stage_index, count(*), min(position), max(position)
        FROM g GROUP BY ALL ORDER BY phase, stage_index
        """,
    )
    names = curriculum.stage_names
    by_phase: dict[int, list[tuple[int, int, int, int]]] = {}
    for phase, stage_index, count, first, last in rows:
        by_phase.setdefault(int(phase), []).append((stage_index, count, first, last))
    width = max(2, len(str(len(by_phase) - 1)))
    phases = []
    for index, stage_rows in sorted(by_phase.items()):
        present = [names[r[0]] for r in stage_rows]
        label = present[0] if len(present) == 1 else f"{present[0]}-to-{present[-1]}"
        phases.append(
            Phase(
                index=index,
                name=f"phase-{index:0{width}d}-{label}",
                stages=present,
                records_by_stage={names[r[0]]: int(r[1]) for r in stage_rows},
                first_position=min(r[2] for r in stage_rows),
                last_position=max(r[3] for r in stage_rows),
            )
        )
    return phases


def write_parts(
    con: duckdb.DuckDBPyConnection,
    ordered_file: Path,
    out_dir: Path,
    phases: list[Phase],
    records_per_file: int,
) -> list[dict[str, Any]]:
    """Write the ordered records as `data/train-NNNNN-of-MMMMM.parquet`, in position order, at
    most `records_per_file` each and never spanning two phases (the Hugging Face Hub's file
    naming: `load_dataset("parquet", data_dir=OUT)` finds exactly these files, in order)."""
    (out_dir / DATA_DIR).mkdir(parents=True, exist_ok=True)
    ranges = [
        (phase.index, start, min(start + records_per_file, phase.last_position + 1))
        for phase in phases
        for start in range(phase.first_position, phase.last_position + 1, records_per_file)
    ] or [(None, 0, 0)]
    parts = []
    for number, (phase, start, end) in enumerate(ranges):
        name = f"{DATA_DIR}/train-{number:05d}-of-{len(ranges):05d}.parquet"
        run_sql(
            con,
            f"""COPY (SELECT * FROM read_parquet({sql_literal(ordered_file)})
                      WHERE position >= {start} AND position < {end} ORDER BY position)
                TO {sql_literal(out_dir / name)}
                (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 20000)""",
        )
        parts.append(
            {
                "path": name,
                "phase": phase,
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
        f'avg(CASE WHEN list_contains("values", {sql_literal(v)}) THEN 1 ELSE 0 END) AS "v_{v}"'
        for v in codex.names
    )
    rows = con.execute(
        f"""SELECT stage_index, stage, count(*) AS records, sum(n_tokens) AS tokens,
                   min(position) AS first_position, max(position) AS last_position,
                   quantile_cont(difficulty, [0.1, 0.5, 0.9]) AS dq,
                   count(*) FILTER (WHERE variant = 'experiential') AS experiential,
                   count(*) FILTER (WHERE variant = 'social') AS social,
                   {coverage}
            FROM read_parquet({sql_literal(records_glob)}) GROUP BY ALL ORDER BY stage_index"""
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
            FROM read_parquet({sql_literal(records_glob)}) GROUP BY ALL ORDER BY ALL"""
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
    """Write the phases' Parquet parts and `.bin`/`.idx` prefixes, the plots, the dataset card
    `README.md` and `manifest.json` into `out_dir` (a staging folder); returns the manifest."""
    curriculum = settings.curriculum
    phases = curriculum_phases(con, ordered_file, curriculum)
    files = write_parts(con, ordered_file, out_dir, phases, curriculum.records_per_file)
    parts = str(out_dir / DATA_DIR / "*.parquet")
    stages = stage_summaries(con, parts, settings.codex, curriculum.stage_names)
    for stage in stages:
        stage["approx_tokens"] = stage.pop("tokens")
    phase_entries = [
        {
            "index": phase.index,
            "name": phase.name,
            "stages": phase.stages,
            "records": phase.records,
            "records_by_stage": phase.records_by_stage,
            "first_position": phase.first_position,
            "last_position": phase.last_position,
            "files": [f["path"] for f in files if f["phase"] == phase.index],
            "hf_config": phase.name,
        }
        for phase in phases
    ]
    tokenized: dict[str, Any] = {"enabled": settings.tokenizer.enabled}
    if settings.tokenizer.enabled:
        tokenized.update(_tokenize_phases(con, out_dir, settings, phase_entries, stages))
    plots.difficulty_by_stage(con, parts, curriculum.stage_names, out_dir / "plots" / PLOTS[0])
    plots.value_coverage(stages, settings.codex.names, out_dir / "plots" / PLOTS[1])
    plots.stage_mix(
        con,
        parts,
        curriculum.stage_names,
        out_dir / "plots" / PLOTS[2],
        [p.first_position for p in phases[1:]],
    )
    manifest = {
        "format": FORMAT,
        "created_by": f"raising-dagster {version('raising-dagster')}",
        "order": ORDER_NOTE,
        "records": sum(f["records"] for f in files),
        "tokens": tokenized.get("tokens"),
        "approx_tokens": sum(s["approx_tokens"] for s in stages),
        "approx_token_method": APPROX_TOKEN_METHOD,
        "tokenized": tokenized,
        "phases": phase_entries,
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
        "dataset_card": card.CARD_FILE,
    }
    (out_dir / card.CARD_FILE).write_text(
        card.render(manifest, settings.dataset_card), encoding="utf-8"
    )
    return manifest


def _tokenize_phases(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    settings: RaisingSettings,
    phases: list[dict[str, Any]],
    stages: list[dict[str, Any]],
) -> dict[str, Any]:
    """One `.bin`/`.idx` prefix per phase under `tokens/`; adds `tokens` and `megatron_prefix`
    to each phase and `tokens` to each stage; returns the manifest's `tokenized` section."""
    tokenizer, name = load_tokenizer(settings.tokenizer.path)
    eos_token = settings.tokenizer.eos_token
    fast = fast_bpe(tokenizer)
    encoder = "tiktoken, ids cross-checked against tokenizers" if fast else "tokenizers"
    (out_dir / TOKENS_DIR).mkdir(parents=True, exist_ok=True)
    try:
        per_stage = _tokenize_each_phase(
            con, out_dir, phases, len(stages), tokenizer, eos_token, fast
        )
    except FastBpeMismatch as mismatch:  # every phase again, by tokenizers alone
        encoder = f"tokenizers ({mismatch})"
        per_stage = _tokenize_each_phase(con, out_dir, phases, len(stages), tokenizer, eos_token)
    for stage in stages:
        stage["tokens"] = int(per_stage[stage["index"]])
    export_tokenizer(settings.tokenizer.path, eos_token, out_dir / TOKENIZER_DIR)
    return {
        "tokenizer": name,
        "tokenizer_files": TOKENIZER_DIR,
        "vocab_size": tokenizer.get_vocab_size(),
        "encoder": encoder,
        "eos_token": eos_token,
        "eos_id": None if eos_token is None else tokenizer.token_to_id(eos_token),
        "dtype": tokenize_dtype(tokenizer).name,
        "format": "Megatron-LM MMapIndexedDataset v1 (see stages/tokenize.py), one prefix a phase",
        "prefixes": [p["megatron_prefix"] for p in phases],
        # None by design: a single prefix loses the order. For a shuffled baseline (the same
        # tokens without curriculum) give Megatron every prefix in one --data-path, unweighted.
        "whole_corpus_prefix": None,
        "tokens": int(per_stage.sum()),
    }


def _tokenize_each_phase(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    phases: list[dict[str, Any]],
    n_stages: int,
    tokenizer: Tokenizer,
    eos_token: str | None,
    fast: FastBpe | None = None,
) -> np.ndarray:
    """Each phase's `.bin`/`.idx` prefix under `tokens/`; sets the phase's `megatron_prefix`
    and `tokens`; returns the tokens of each stage."""
    per_stage = np.zeros(n_stages, dtype=np.int64)
    for phase in phases:
        prefix = f"{TOKENS_DIR}/{phase['name']}"
        files = ", ".join(sql_literal(out_dir / f) for f in phase["files"])
        corpus = tokenize_parts(
            [out_dir / f for f in phase["files"]], tokenizer, out_dir / prefix, eos_token, fast
        )
        stage_of = np.array(
            [
                r[0]
                for r in run_sql(
                    con,
                    f"""SELECT stage_index FROM read_parquet([{files}]) ORDER BY position""",
                )
            ],
            dtype=np.int64,
        )
        per_stage += np.bincount(stage_of, weights=corpus.sizes, minlength=n_stages).astype(
            np.int64
        )
        phase["megatron_prefix"] = prefix
        phase["tokens"] = int(corpus.sizes.sum())
    return per_stage
