"""Teacher throughput in experience mode: the pipeline's generated tokens/s over a partition vs
raw `vllm.LLM.chat` on the same conversations in one batch (goal: ratio >= 0.95), its accepted
records per second, and the wall time of a fully cached re-run.

    .venv/bin/python benchmarks/bench_teacher.py [--docs 24] [--stage experiential|social]
        [--data-dir data] [--model FOLDER]

Runs on the embedded SmolLM2-135M-Instruct (converted under DATA_DIR/models on first use). One
engine serves every measurement, with prefix caching off so no run reuses another's prompt work; a
warm-up request runs first so no timing includes engine start.

    .venv/bin/python benchmarks/bench_teacher.py --cache-only [--entries 1000000]

The generation cache alone (no vLLM): fills a cache through `GenerationCache.put_many` in batches
of `--batch` entries (one run's finished batches) and times `get_many` of a stage's batch of
`--lookup` keys (half stored, half not) after 100 batches, after 4,000, and at `--entries`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")


def bench_cache(entries: int, batch: int, lookup: int, text_chars: int, repeats: int) -> None:
    """Lookup time of the generation cache as it grows, through its public methods only."""
    import hashlib
    import statistics
    from datetime import UTC, datetime

    from raising_dagster.teacher.cache import CACHE_SCHEMA, GenerationCache

    def key(i: int) -> str:
        return hashlib.sha256(f"entry:{i}".encode()).hexdigest()

    filler = ("I read this and it made me think about honesty and patience. " * 64)[:text_chars]
    now = datetime.now(UTC)

    def row(i: int) -> dict:
        known = {
            "key": key(i),
            "stage": "first_person",
            "backend": "vllm",
            "model": "bench-model",
            "model_revision": "r1",
            "prompt_id": "first_person/rewrite.v1",
            "prompt_sha": "p" * 64,
            "key_prompt_sha": "p" * 64,
            "sampling": '{"temperature": 0.7}',
            "seed": i,
            "input_sha": key(-i - 1),
            "text": f"{i}: {filler}",
            "attempts": 1,
            "fallback_reason": None,
            "created_at": now,
        }
        return {name: known.get(name) for name in CACHE_SCHEMA}

    marks = sorted({100, 4000, max(1, entries // batch)})
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        cache = GenerationCache(Path(tmp) / "teacher_cache")
        written, put_s = 0, 0.0
        report = [
            f"generation cache: {cache.__class__.__module__}, batches of {batch}, "
            f"lookups of {lookup} keys ({lookup // 2} stored), median of {repeats}"
        ]
        for mark in marks:
            while written < mark * batch:
                start = time.perf_counter()
                cache.put_many("first_person", [row(i) for i in range(written, written + batch)])
                put_s += time.perf_counter() - start
                written += batch
            times = []
            for r in range(repeats):
                stored = [key((r * 7919 + j * 104729) % written) for j in range(lookup // 2)]
                missing = [key(written + 10_000_000 + r * lookup + j) for j in range(lookup // 2)]
                start = time.perf_counter()
                found = cache.get_many("first_person", stored + missing)
                times.append(time.perf_counter() - start)
                assert set(found) == set(stored), "lookup lost stored entries"
            store_bytes = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
            report.append(
                f"after {mark:>5} batches ({written:>8} entries, {store_bytes / 1e6:8.1f} MB on "
                f"disk): get_many {statistics.median(times) * 1000:9.2f} ms; mean put_many "
                f"{put_s / mark * 1000:7.2f} ms a batch"
            )
            print(report[-1], flush=True)  # noqa: T201 - progress of a long benchmark
        start = time.perf_counter()
        stats = cache.stats()
        report.append(f"stats: {time.perf_counter() - start:.2f} s, {stats[0]['entries']} entries")
    print("\n".join(report))  # noqa: T201 - a benchmark script reports on stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--stage", default="experiential", choices=["experiential", "social"])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--model", type=Path, default=None, help="a model folder [SmolLM2]")
    parser.add_argument("--cache-only", action="store_true", help="the cache alone, no vLLM")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--lookup", type=int, default=64)
    parser.add_argument("--text-chars", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=None, help="[cache: 5, engine: 2]")
    args = parser.parse_args()
    if args.cache_only:
        bench_cache(args.entries, args.batch, args.lookup, args.text_chars, args.repeats or 5)
        return

    bench_engine(args.docs, args.stage, args.data_dir, args.model, args.repeats or 2)


def bench_engine(n_docs: int, stage: str, data_dir: Path, model: Path | None, repeats: int) -> None:
    """The pipeline (experience mode: the model writes the stage's piece around each document)
    against raw `vllm.LLM.chat` on the exact first-attempt conversations it sends."""
    import polars as pl

    from raising_dagster.config import SAMPLE_CORPUS, TeacherSettings, load_settings
    from raising_dagster.stages import rewrite
    from raising_dagster.stages.ingest import read_shard
    from raising_dagster.stages.score import score_docs
    from raising_dagster.teacher.cache import CachedTeacher, GenerationCache
    from raising_dagster.teacher.llm import Call, Completion
    from raising_dagster.teacher.template import TemplateTeacher
    from raising_dagster.teacher.vllm import VllmTeacher

    settings = load_settings()
    codex, identity, seed = settings.codex, settings.identity, settings.curriculum.seed
    shards = sorted(SAMPLE_CORPUS.glob("*.jsonl"))
    raw = pl.concat([read_shard(path).docs for path in shards]).head(n_docs)
    scored = score_docs(raw, codex, settings.scoring, settings.curriculum)
    template = TemplateTeacher(identity)
    framed = rewrite.first_person(raw, scored, template, codex, seed)
    experienced = rewrite.experiential(framed, template, codex, seed)

    def run_stage(teacher: object) -> pl.DataFrame:
        if stage == "experiential":
            return rewrite.experiential(framed, teacher, codex, seed, batch_size=n_docs)
        return rewrite.social(experienced, raw, teacher, codex, seed, 1.0, batch_size=n_docs)

    def teacher_settings(attempts: int) -> TeacherSettings:
        # No prefix caching: the pipeline runs after the raw batch on the same prompts and must
        # not be timed on prompts the engine has already seen.
        return TeacherSettings(
            backend="vllm",
            mode="experience",
            model=str(model) if model else None,
            data_dir=data_dir,
            max_attempts=attempts,
            engine_kwargs={"enable_prefix_caching": False},
        )

    base = VllmTeacher(teacher_settings(1), identity)
    llm = base.engine()
    from vllm import SamplingParams

    llm.chat([[{"role": "user", "content": "Hello"}]], SamplingParams(max_tokens=4), use_tqdm=False)

    def raw_chat(rounds: list[list[Call]]) -> tuple[int, float]:
        """Raw `vllm.LLM.chat` on the same calls, round by round (the started answer continued
        as the backend sends it): generated tokens and seconds."""
        tokens, start = 0, time.perf_counter()
        for calls in rounds:
            for continued in (False, True):
                group = [c for c in calls if (c.prefill is not None) == continued]
                if not group:
                    continue
                outputs = llm.chat(
                    [
                        [*c.messages, {"role": "assistant", "content": c.prefill}]
                        if continued
                        else c.messages
                        for c in group
                    ],
                    [SamplingParams(**VllmTeacher._sampling_kwargs(c)) for c in group],
                    use_tqdm=False,
                    add_generation_prompt=not continued,
                    continue_final_message=continued,
                )
                tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
        return tokens, time.perf_counter() - start

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for attempts in (1, 3):
            best = None
            for rep in range(repeats):  # the best of `repeats` of each: the machine is shared
                inner = VllmTeacher(teacher_settings(attempts), identity, engine=llm)
                rounds: list[list[Call]] = []  # each batched generation the pipeline asked for
                generate = inner._generate

                def recorded(
                    calls: list[Call], generate: Callable = generate, rounds: list = rounds
                ) -> list[Completion]:
                    rounds.append(list(calls))
                    return generate(calls)

                inner._generate = recorded  # type: ignore[method-assign]
                cache = GenerationCache(Path(tmp) / f"cache-{attempts}-{rep}")
                if best is not None:  # every other repeat: raw first, so order favours neither
                    raw_first = raw_chat(best[5])
                start = time.perf_counter()
                frame = run_stage(CachedTeacher(inner, cache))
                wall = time.perf_counter() - start
                rerun = CachedTeacher(inner, cache)
                calls_before = inner.stats.calls
                start = time.perf_counter()
                again = run_stage(rerun)
                cached_s = time.perf_counter() - start
                assert inner.stats.calls == calls_before and again["text"].equals(frame["text"])
                raw = raw_chat(rounds) if best is None else raw_first
                if best is None:
                    best = [wall, inner.stats, frame, cached_s, rerun.hits, rounds, raw]
                else:
                    assert frame["text"].equals(best[2]["text"])  # seeded: the same outputs
                    if wall < best[0]:
                        best[0], best[1] = wall, inner.stats
                    best[6] = (raw[0], min(best[6][1], raw[1]))
            results[attempts] = tuple(best)
    base.close()

    out = [
        f"docs={framed.height} stage={stage} mode=experience model={base.model} "
        f"({base.model_revision}); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    ]
    for attempts, (wall, stats, frame, cached_s, hits, rounds, raw) in results.items():
        tps, raw_tps = stats.generated_tokens / wall, raw[0] / raw[1]
        accepted = int(
            (frame["tried_backend"].is_not_null() & frame["fallback_reason"].is_null()).sum()
        )
        out.append(
            f"max_attempts={attempts}: pipeline {stats.generated_tokens} tokens in {wall:.1f} s = "
            f"{tps:.1f} tok/s (best of {repeats}; {stats.generation_s:.1f} s of it in the "
            f"engine); raw vllm.LLM.chat on the same {stats.calls} "
            f"calls in {len(rounds)} batches: {raw[0]} tokens in {raw[1]:.1f} s = "
            f"{raw_tps:.1f} tok/s; "
            f"ratio {tps / raw_tps:.2f} (goal >= 0.95); {accepted}/{frame.height} records "
            f"accepted = {accepted / wall:.2f} accepted records/s; rejections "
            f"{stats.rejections}; cached re-run {cached_s * 1000:.0f} ms ({hits} hits, 0 engine "
            "calls)"
        )
    print("\n".join(out))  # noqa: T201 - a benchmark script reports on stdout


if __name__ == "__main__":
    main()
