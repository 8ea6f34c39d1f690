"""Teacher throughput: the pipeline's generated tokens/s over a partition vs raw `vllm.LLM.chat`
on the same prompts in one batch (goal: ratio >= 0.9), and the wall time of a fully cached re-run.

    .venv/bin/python benchmarks/bench_teacher.py [--docs 24] [--stage first_person]

Runs on the embedded SmolLM2-135M-Instruct (converted under data/models on first use). One engine
serves every measurement, with prefix caching off so no run reuses another's prompt work; a
warm-up request runs first so no timing includes engine start.

    .venv/bin/python benchmarks/bench_teacher.py --cache-only [--entries 1000000]

The generation cache alone (no vLLM): fills a cache through `GenerationCache.put_many` in batches
of `--batch` entries (one run's finished batches) and times `get_many` of a stage's batch of
`--lookup` keys (half stored, half not) after 100 batches, after 4,000, and at `--entries`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
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
    parser.add_argument("--stage", default="first_person")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--cache-only", action="store_true", help="the cache alone, no vLLM")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--lookup", type=int, default=64)
    parser.add_argument("--text-chars", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.cache_only:
        bench_cache(args.entries, args.batch, args.lookup, args.text_chars, args.repeats)
        return

    import polars as pl

    from raising_dagster.config import SAMPLE_CORPUS, TeacherSettings, load_codex, load_identity
    from raising_dagster.schema import RAW_SCHEMA
    from raising_dagster.stages.rewrite import rewrite_docs
    from raising_dagster.stages.values import detect_values
    from raising_dagster.teacher.cache import CachedTeacher, GenerationCache
    from raising_dagster.teacher.llm import Call, Completion
    from raising_dagster.teacher.vllm import VllmTeacher

    lines = []
    for shard in sorted(SAMPLE_CORPUS.glob("*.jsonl")):
        lines += shard.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines[: args.docs]]
    raw = pl.DataFrame(
        [
            {
                "doc_id": r["id"],
                "shard": "bench",
                "line": i,
                "title": r.get("title"),
                "kind": r.get("kind", "article"),
                "text": r["text"],
                "meta": "{}",
                "input_sha": "",
            }
            for i, r in enumerate(records)
        ],
        schema=RAW_SCHEMA,
    )
    codex, identity = load_codex(), load_identity()
    docs = detect_values(raw, codex).with_columns(source_doc_id=pl.col("doc_id"))

    def settings(attempts: int) -> TeacherSettings:
        # No prefix caching: the pipeline runs after the raw batch on the same prompts and must
        # not be timed on prompts the engine has already seen.
        return TeacherSettings(
            backend="vllm",
            data_dir=args.data_dir,
            max_attempts=attempts,
            engine_kwargs={"enable_prefix_caching": False},
        )

    base = VllmTeacher(settings(1), identity)
    llm = base.engine()
    from vllm import SamplingParams

    llm.chat([[{"role": "user", "content": "Hello"}]], SamplingParams(max_tokens=4), use_tqdm=False)

    # The exact first-attempt prompts the pipeline sends, captured from its own request building.
    captured: list[Call] = []
    real_generate = base._generate

    def capture(calls: list[Call]) -> list[Completion]:
        captured.extend(calls)
        return [Completion(error="captured") for _ in calls]

    base._generate = capture  # type: ignore[method-assign]
    source_texts = dict(zip(raw["doc_id"], raw["text"], strict=True))
    rewrite_docs(docs, args.stage, base, codex, 1, batch_size=len(docs), source_texts=source_texts)
    base._generate = real_generate  # type: ignore[method-assign]

    # 1. raw vllm.LLM.chat, one batch, same prompts and sampling parameters.
    params = [SamplingParams(**VllmTeacher._sampling_kwargs(c)) for c in captured]
    start = time.perf_counter()
    outputs = llm.chat([c.messages for c in captured], params, use_tqdm=False)
    raw_s = time.perf_counter() - start
    raw_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for attempts in (1, 3):
            inner = VllmTeacher(settings(attempts), identity, engine=llm)
            cache = GenerationCache(Path(tmp) / f"cache-{attempts}")
            teacher = CachedTeacher(inner, cache)
            start = time.perf_counter()
            frame = rewrite_docs(
                docs, args.stage, teacher, codex, 1, batch_size=len(docs), source_texts=source_texts
            )
            wall = time.perf_counter() - start
            rerun = CachedTeacher(inner, cache)
            calls_before = inner.stats.calls
            start = time.perf_counter()
            again = rewrite_docs(
                docs, args.stage, rerun, codex, 1, batch_size=len(docs), source_texts=source_texts
            )
            cached_s = time.perf_counter() - start
            assert inner.stats.calls == calls_before and again["text"].equals(frame["text"])
            results[attempts] = (wall, inner.stats, frame, cached_s, rerun.hits)
    base.close()

    raw_tps = raw_tokens / raw_s
    out = [f"docs={len(docs)} stage={args.stage} model={base.model} ({base.model_revision})"]
    out.append(
        f"raw vllm.LLM.chat, one batch of {len(captured)}: {raw_tokens} tokens in "
        f"{raw_s:.1f} s = {raw_tps:.1f} tok/s"
    )
    for attempts, (wall, stats, frame, cached_s, hits) in results.items():
        tps = stats.generated_tokens / wall
        fallbacks = int(frame["fallback_reason"].is_not_null().sum())
        out.append(
            f"pipeline max_attempts={attempts}: {stats.generated_tokens} tokens in {wall:.1f} s = "
            f"{tps:.1f} tok/s, ratio {tps / raw_tps:.2f}; {stats.calls} generations, "
            f"{fallbacks}/{frame.height} fallbacks, rejections {stats.rejections}; "
            f"cached re-run {cached_s * 1000:.0f} ms ({hits} hits, 0 engine calls)"
        )
    print("\n".join(out))  # noqa: T201 - a benchmark script reports on stdout


if __name__ == "__main__":
    main()
