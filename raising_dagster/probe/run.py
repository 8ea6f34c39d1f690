"""Run the student probe on a published store: train one small model per arm and seed, probe
each, and write `probe.json`, `completions.parquet` and the plots to an output folder."""

from __future__ import annotations

import importlib.util
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from raising_dagster.config import RaisingSettings, sha256_hex
from raising_dagster.probe.data import (
    ARMS,
    PublishedCorpus,
    Vocab,
    load_corpus,
    token_blocks,
    windowed_curriculum,
)
from raising_dagster.probe.judge import (
    JudgeItem,
    TeacherVerdicts,
    agreement,
    build_judge,
    teacher_verdicts,
)
from raising_dagster.probe.probes import (
    Interval,
    ValueJudge,
    is_first_person,
    load_persona_prompts,
    load_value_prompts,
    mean_loss_interval,
    other_narrator,
    perplexity_interval,
    ratio_interval,
    share_interval,
    value_judges,
)
from raising_dagster.probe.report import write_plots
from raising_dagster.stages.tokenize import load_tokenizer
from raising_dagster.store import write_json, write_parquet
from raising_dagster.teacher.llm import LlmTeacher

DEFAULT_EOS = "<|endoftext|>"

PROBE_FILE = "probe.json"
COMPLETIONS_FILE = "completions.parquet"


class ProbeUnavailable(RuntimeError):
    """PyTorch or transformers is missing: the probe needs the `probe` extra."""


def require_torch() -> None:
    """Raise a clear error when the probe's training stack is not installed."""
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ProbeUnavailable(
            f"the student probe needs {' and '.join(missing)}: install the `probe` extra "
            "(`pip install -e '.[probe]'`, or `make probe`, which installs the CPU build)"
        )


def _seed(*parts: object) -> int:
    return int(sha256_hex(":".join(map(str, parts)))[:8], 16)


def _interval(prefix: str, interval: Interval) -> dict[str, Any]:
    return {prefix: interval.value, f"{prefix}_ci": interval.as_list()}


def run_probe(
    settings: RaisingSettings,
    store: Path,
    out: Path,
    progress: Callable[[str], None] = lambda message: None,
    judge_teacher: LlmTeacher | None = None,
) -> dict[str, Any]:
    """Probe the corpus published under `store`; the results go to `out` and are returned. With
    `probe.judge: teacher` the configured teacher judges the values probe (or `judge_teacher`, a
    running one, which is left running)."""
    started = time.perf_counter()
    probe = settings.probe
    # the inputs first: a store without a corpus fails before the training stack is imported
    corpus = load_corpus(store, probe.heldout_share, probe.split_seed)
    tokenizer, tokenizer_name = load_tokenizer(settings.tokenizer.path)
    persona, persona_source = load_persona_prompts(probe.persona_prompts)
    value_prompts, values_source = load_value_prompts(probe.value_prompts)
    judges, skipped = value_judges(value_prompts, settings.codex)
    require_torch()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the students are built from a config: no hub
    import torch
    import transformers

    from raising_dagster.probe import train as student

    device = student.resolve_device(probe.device)
    if probe.threads:
        torch.set_num_threads(probe.threads)

    texts = corpus.arm_texts()
    heldout_raw = corpus.heldout_raw()
    stage_texts = corpus.heldout_by_stage()
    persona_texts = [p.text for p in persona.prompts]
    value_texts = [j.prompt.text for j in judges]
    vocab = Vocab.build(
        tokenizer,
        chain(
            texts["raw"],
            texts["raised_ordered"],
            heldout_raw,
            *stage_texts.values(),
            persona_texts,
            value_texts,
        ),
        probe.compact_vocab,
        # the corpus's separator; a corpus published without one still needs an end for students
        settings.tokenizer.eos_token or DEFAULT_EOS,
    )
    raised = vocab.encode(texts["raised_ordered"])
    arm_docs = {
        "raw": vocab.encode(texts["raw"]),
        "raised_ordered": raised,
        "raised_shuffled": raised,
    }
    heldout_docs = vocab.encode(heldout_raw)
    stage_docs = {s: vocab.encode(t) for s, t in stage_texts.items() if t}
    persona_ids = vocab.encode(persona_texts, append_eos=False)
    value_ids = vocab.encode(value_texts, append_eos=False)

    block = probe.batch_size * probe.context_length
    steps = max(1, probe.budget_tokens // block)
    eval_steps = {
        max(1, round(steps * k / probe.eval_points)) for k in range(1, probe.eval_points + 1)
    }
    progress(
        f"probe: {corpus.records.height} records, {corpus.sources.height} source documents "
        f"({int(corpus.sources['heldout'].sum())} held out); vocabulary {vocab.size}; "
        f"{steps} steps of {block} tokens per arm and seed on {device}"
    )

    inputs = _Inputs(
        arm_docs=arm_docs,
        heldout_docs=heldout_docs,
        stage_docs=stage_docs,
        prompts={
            "persona": (persona_ids, [(p.id, p.text, None) for p in persona.prompts]),
            "values": (value_ids, [(j.prompt.id, j.prompt.text, j) for j in judges]),
        },
    )
    completions: list[dict[str, Any]] = []
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    for seed in probe.seeds:
        for arm in ARMS:
            runs[(arm, seed)] = _probe_student(
                student, settings, vocab, inputs, arm, seed, steps, eval_steps, device, completions
            )
            run = runs[(arm, seed)]
            progress(
                f"  {arm:<16} seed {seed}: {run['tokens_seen']} tokens "
                f"({run['tokens_seen'] / run['corpus_tokens']:.1f} epochs) in "
                f"{run['train_seconds']:.0f} s, final train loss {run['train_losses'][-1]:.2f}"
            )

    frame = pl.DataFrame(completions, infer_schema_length=None)
    judge_report = _judge(settings, frame, judges, judge_teacher)
    verdicts = judge_report.pop("verdicts")
    if verdicts is not None:
        frame = frame.with_columns(pl.Series("value_way_teacher", verdicts, dtype=pl.Boolean))
    report = _report(
        settings, corpus, vocab, frame, runs, judge_report, steps, tokenizer_name, judges
    )
    report["prompts"] = {
        "persona": {
            "source": persona_source,
            "version": persona.version,
            "count": len(persona_texts),
        },
        "values": {
            "source": values_source,
            "version": value_prompts.version,
            "count": len(judges),
            "skipped": skipped,
        },
    }
    report["environment"] = {
        "device": str(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(frame, out / COMPLETIONS_FILE)
    report["plots"] = [str(p.relative_to(out)) for p in write_plots(report, out / "plots")]
    report["completions"] = COMPLETIONS_FILE
    report["seconds"] = round(time.perf_counter() - started, 1)
    report = _finite(report)
    write_json(report, out / PROBE_FILE)
    return report


def _finite(data: Any) -> Any:
    """The report with every NaN or infinity as None (probe.json stays strict JSON)."""
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


@dataclass(frozen=True)
class _Inputs:
    """The encoded texts every student is trained and probed on."""

    arm_docs: dict[str, list[np.ndarray]]
    heldout_docs: list[np.ndarray]
    stage_docs: dict[str, list[np.ndarray]]
    # probe kind -> (prompt ids, [(prompt id, prompt text, value judge or None)])
    prompts: dict[str, tuple[list[np.ndarray], list[tuple[str, str, ValueJudge | None]]]]


def _probe_student(
    student: Any,
    settings: RaisingSettings,
    vocab: Vocab,
    inputs: _Inputs,
    arm: str,
    seed: int,
    steps: int,
    eval_steps: set[int],
    device: Any,
    completions: list[dict[str, Any]],
) -> dict[str, Any]:
    """Train one arm's student for one seed, score the held-out texts along the way and at the
    end, sample and judge its completions (appended to `completions`); what it measured."""
    probe = settings.probe
    block = probe.batch_size * probe.context_length
    model = student.build_model(probe, vocab.size, seed, vocab.eos)
    curve: list[tuple[int, dict[str, np.ndarray]]] = []

    def nll(docs: list[np.ndarray]) -> np.ndarray:
        return student.document_nll(
            model, docs, vocab.eos, probe.context_length, probe.batch_size, device
        )

    def evaluate(tokens_seen: int) -> None:
        curve.append((tokens_seen, {s: nll(d) for s, d in inputs.stage_docs.items()}))

    docs = inputs.arm_docs[arm]
    if arm == "raised_ordered":
        docs = windowed_curriculum(docs, probe.curriculum_windows, steps * block)
    blocks = token_blocks(docs, arm != "raised_ordered", _seed("shuffle", seed), block, steps)
    log = student.train(model, blocks, steps, probe, device, evaluate, eval_steps)
    heldout = nll(inputs.heldout_docs)
    for kind, (prompt_ids, prompts) in inputs.prompts.items():
        samples = student.sample(
            model,
            prompt_ids,
            probe.samples_per_prompt,
            probe,
            vocab.eos,
            _seed("generate", seed, kind),
            device,
        )
        for (prompt_id, text, judge), outputs in zip(prompts, samples, strict=True):
            completions.extend(
                _judged(arm, seed, kind, prompt_id, text, n, vocab.decode(ids), judge, settings)
                for n, ids in enumerate(outputs)
            )
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "heldout_nll": heldout,
        "curve": curve,
        "train_seconds": log.seconds,
        "train_losses": log.losses,
        "tokens_seen": log.tokens_seen,
        "steps": log.steps,
        "corpus_tokens": int(sum(len(d) for d in inputs.arm_docs[arm])),
    }


def _judged(
    arm: str,
    seed: int,
    kind: str,
    prompt_id: str,
    prompt: str,
    number: int,
    text: str,
    judge: ValueJudge | None,
    settings: RaisingSettings,
) -> dict[str, Any]:
    """One completion with every judgment of it."""
    return {
        "arm": arm,
        "seed": seed,
        "probe": kind,
        "prompt_id": prompt_id,
        "prompt": prompt,
        "sample": number,
        "text": text,
        "first_person": is_first_person(text),
        "other_narrator": other_narrator(text, settings.identity),
        "value": judge.value.name if judge else None,
        "value_way_cue": judge.verdict(text) if judge else None,
    }


def _judge(
    settings: RaisingSettings,
    frame: pl.DataFrame,
    judges: list[ValueJudge],
    running: LlmTeacher | None,
) -> dict[str, Any]:
    """What judged the values probe; with the teacher judge, its verdicts and agreement."""
    cue = {
        "judge": "cue",
        "cue_judge": "codex value cues or the prompt's toward phrases, and no away phrase",
        "patterns": {j.prompt.id: j.patterns() for j in judges},
    }
    if settings.probe.judge == "cue":
        return {**cue, "verdicts": None}
    values = frame.filter(pl.col("probe") == "values")
    descriptions = {v.name: v.description for v in settings.codex.values}
    items = [
        JudgeItem(r["prompt"], r["value"], descriptions[r["value"]], r["text"])
        for r in values.iter_rows(named=True)
    ]
    teacher = running or build_judge(settings)
    try:
        result: TeacherVerdicts = teacher_verdicts(teacher, settings.probe.judge_prompt, items)
    finally:
        if running is None:
            teacher.close()
    verdicts: list[bool | None] = [None] * frame.height
    value_rows = [i for i, p in enumerate(frame["probe"].to_list()) if p == "values"]
    for row, verdict in zip(value_rows, result.verdicts, strict=True):
        verdicts[row] = verdict
    return {
        **cue,
        "judge": "teacher",
        "teacher": {
            "backend": result.backend,
            "model": result.model,
            "prompt_id": result.prompt_id,
            "prompt_sha": result.prompt_sha,
        },
        "agreement_with_cue_judge": agreement(values["value_way_cue"].to_list(), result.verdicts),
        "answers_sample": result.answers[:10],
        "verdicts": verdicts,
    }


def _shares(frame: pl.DataFrame, column: str, probe: Any, seed: int) -> Interval:
    """A share over completions, with an interval from resampling prompts."""
    judged = frame.filter(pl.col(column).is_not_null())
    by_prompt = judged.group_by("prompt_id").agg(
        pl.col(column).cast(pl.Int64).sum().alias("hits"), pl.len().alias("n")
    )
    return share_interval(
        by_prompt["hits"].to_numpy(),
        by_prompt["n"].to_numpy(),
        probe.bootstrap_resamples,
        probe.confidence,
        seed,
    )


def _pooled(arrays: list[np.ndarray]) -> np.ndarray:
    """Per-document (nll, tokens) summed over seeds."""
    return np.sum(arrays, axis=0)


def _report(
    settings: RaisingSettings,
    corpus: PublishedCorpus,
    vocab: Vocab,
    frame: pl.DataFrame,
    runs: dict[tuple[str, int], dict[str, Any]],
    judge: dict[str, Any],
    steps: int,
    tokenizer_name: str,
    judges: list[ValueJudge],
) -> dict[str, Any]:
    probe = settings.probe
    seeds = probe.seeds
    boot = _seed("bootstrap", probe.split_seed)
    value_column = "value_way_teacher" if judge["judge"] == "teacher" else "value_way_cue"
    heldout = {arm: _pooled([runs[(arm, s)]["heldout_nll"] for s in seeds]) for arm in ARMS}
    arms: dict[str, Any] = {}
    for arm in ARMS:
        rows = frame.filter(pl.col("arm") == arm)
        persona = rows.filter(pl.col("probe") == "persona")
        values = rows.filter(pl.col("probe") == "values")
        entry: dict[str, Any] = {}
        entry |= _interval("first_person_share", _shares(persona, "first_person", probe, boot))
        entry |= _interval(
            "other_narrator_share",
            _shares(
                persona.with_columns(pl.col("other_narrator").is_not_null()),
                "other_narrator",
                probe,
                boot,
            ),
        )
        entry |= _interval("value_share", _shares(values, value_column, probe, boot))
        if value_column != "value_way_cue":
            entry |= _interval("value_share_cue", _shares(values, "value_way_cue", probe, boot))
        entry["value_share_by_value"] = {
            value: _mean(group[value_column])
            for (value,), group in values.group_by(["value"], maintain_order=True)
        }
        entry |= _interval(
            "heldout_perplexity",
            perplexity_interval(heldout[arm], probe.bootstrap_resamples, probe.confidence, boot),
        )
        entry |= _interval(
            "heldout_perplexity_ratio_to_raw",
            ratio_interval(
                heldout[arm], heldout["raw"], probe.bootstrap_resamples, probe.confidence, boot
            ),
        )
        first = runs[(arm, seeds[0])]
        entry["training"] = {
            "corpus_tokens": first["corpus_tokens"],
            "tokens_seen": first["tokens_seen"],
            "steps": first["steps"],
            "parameters": first["parameters"],
            "epochs": round(first["tokens_seen"] / first["corpus_tokens"], 2),
            "seconds": [round(runs[(arm, s)]["train_seconds"], 1) for s in seeds],
            "final_train_loss": [runs[(arm, s)]["train_losses"][-1] for s in seeds],
        }
        entry["per_seed"] = {
            str(s): {
                "first_person_share": _mean(persona.filter(pl.col("seed") == s)["first_person"]),
                "value_share": _mean(values.filter(pl.col("seed") == s)[value_column]),
                "heldout_perplexity": float(
                    np.exp(
                        runs[(arm, s)]["heldout_nll"][:, 0].sum()
                        / runs[(arm, s)]["heldout_nll"][:, 1].sum()
                    )
                ),
            }
            for s in seeds
        }
        entry["examples"] = [
            {"probe": r["probe"], "prompt": r["prompt"], "completion": r["text"]}
            for r in rows.filter((pl.col("seed") == seeds[0]) & (pl.col("sample") == 0))
            .group_by("probe", maintain_order=True)
            .head(3)
            .iter_rows(named=True)
        ]
        arms[arm] = entry
    return {
        "arms": arms,
        "order": _order(corpus, runs, seeds, probe),
        "judge": judge,
        "data": {
            **corpus.summary(),
            "tokenizer": tokenizer_name,
            "vocabulary": vocab.size,
            "compact_vocab": probe.compact_vocab,
        },
        "settings": {**probe.model_dump(mode="json"), "steps": steps},
        "value_prompts": [j.prompt.id for j in judges],
    }


def _mean(series: pl.Series) -> float | None:
    values = series.drop_nulls()
    return float(values.cast(pl.Float64).mean()) if len(values) else None


def _order(
    corpus: PublishedCorpus,
    runs: dict[tuple[str, int], dict[str, Any]],
    seeds: list[int],
    probe: Any,
) -> dict[str, Any]:
    """Each stage's held-out loss along training per arm (pooled over seeds), the final loss with
    an interval over records, and ordered minus shuffled."""
    first = runs[(ARMS[0], seeds[0])]["curve"]
    tokens = [t for t, _ in first]
    stages = list(first[0][1])
    curves: dict[str, dict[str, list[float]]] = {}
    final: dict[str, dict[str, Any]] = {}
    for arm in ARMS:
        curves[arm], final[arm] = {}, {}
        for stage in stages:
            points = [
                _pooled([runs[(arm, s)]["curve"][i][1][stage] for s in seeds])
                for i in range(len(tokens))
            ]
            curves[arm][stage] = [float(p[:, 0].sum() / p[:, 1].sum()) for p in points]
            last = mean_loss_interval(
                points[-1], probe.bootstrap_resamples, probe.confidence, _seed("order", stage)
            )
            final[arm][stage] = {"loss": last.value, "loss_ci": last.as_list()}
    difference = {
        stage: {
            "final": curves["raised_ordered"][stage][-1] - curves["raised_shuffled"][stage][-1],
            "mean_over_training": float(
                np.mean(curves["raised_ordered"][stage][1:])
                - np.mean(curves["raised_shuffled"][stage][1:])
            )
            if len(tokens) > 1
            else 0.0,
        }
        for stage in stages
    }
    return {
        "stages": stages,
        "heldout_records": {s: len(corpus.heldout_by_stage()[s]) for s in stages},
        "tokens_seen": tokens,
        "loss_curves": curves,
        "final_loss": final,
        "ordered_minus_shuffled": difference,
    }
