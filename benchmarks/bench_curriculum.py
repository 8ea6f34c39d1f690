"""`make bench`: documents per second and peak memory of each stage at two corpus sizes, and our
scoring + ordering against a hand-written single-pass Polars script on the same data.

Each stage runs in its own process (the same pure functions the Dagster assets call), so its peak
resident memory is its own. Usage: python benchmarks/bench_curriculum.py [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCS_PER_SHARD = 50_000
STAGES = ("ingest", "score", "frame", "order", "publish")


def run_stage(stage: str, root: Path) -> None:
    """Run one stage over every shard under root; print seconds and peak RSS as JSON."""
    import polars as pl

    from raising_dagster.config import load_settings
    from raising_dagster.stages import rewrite
    from raising_dagster.stages.ingest import list_shards, read_shard
    from raising_dagster.stages.order import connect, order_records
    from raising_dagster.stages.pack import build_training_corpus
    from raising_dagster.stages.score import score_docs
    from raising_dagster.store import StoreLayout, write_parquet
    from raising_dagster.teacher import TemplateTeacher

    settings = load_settings(landing_dir=root / "landing", store_dir=root / "store")
    layout = StoreLayout(settings.store_dir)
    keys = sorted(list_shards(settings.landing_dir))
    start = time.perf_counter()
    if stage == "ingest":
        for key, path in list_shards(settings.landing_dir).items():
            write_parquet(read_shard(path).docs, layout.shard_file("raw_docs", key))
    elif stage == "frame":
        teacher, seed = TemplateTeacher(settings.identity), settings.curriculum.seed
        for key in keys:
            raw = pl.read_parquet(layout.shard_file("raw_docs", key))
            scored = pl.read_parquet(layout.shard_file("scored_docs", key))
            fp = rewrite.first_person(raw, scored, teacher, settings.codex, seed, 4096)
            ex = rewrite.experiential(fp, teacher, settings.codex, seed, 4096)
            so = rewrite.social(
                ex, raw, teacher, settings.codex, seed, settings.curriculum.social_share, 4096
            )
            write_parquet(ex, layout.shard_file("experiential_docs", key))
            write_parquet(so, layout.shard_file("social_docs", key))
    elif stage == "score":
        for key in keys:
            raw = pl.read_parquet(layout.shard_file("raw_docs", key))
            write_parquet(
                score_docs(raw, settings.codex, settings.scoring, settings.curriculum),
                layout.shard_file("scored_docs", key),
            )
    elif stage == "order":
        con = connect(temp_dir=root / "tmp")
        order_records(
            con,
            *[
                [layout.shard_file(a, k) for k in keys]
                for a in ("scored_docs", "experiential_docs", "social_docs")
            ],
            layout.ordered_file,
            settings.curriculum,
            settings.codex,
            settings.identity,
        )
        write_parquet(con.sql("SELECT * FROM excluded").pl(), layout.exclusions_file)
    elif stage == "publish":
        con = connect(temp_dir=root / "tmp")
        build_training_corpus(con, layout.ordered_file, root / "training_ready", settings, [], {})
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write(json.dumps({"seconds": seconds, "peak_mb": peak_mb}) + "\n")


def _child(args: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_size(n_docs: int, work: Path) -> dict[str, object]:
    from raising_dagster.stages.synth import write_synth_corpus

    root = work / f"n{n_docs}"
    shutil.rmtree(root, ignore_errors=True)
    paths = write_synth_corpus(root / "landing", n_docs, max(1, n_docs // DOCS_PER_SHARD), seed=1)
    raw_mb = sum(p.stat().st_size for p in paths) / 2**20
    results = {stage: _child(["--stage", stage, str(root)]) for stage in STAGES}
    floor = _child(["--floor", str(root)])
    return {"docs": n_docs, "raw_mb": raw_mb, "stages": results, "floor": floor}


def report(rows: list[dict[str, object]]) -> str:
    lines = ["| docs | raw MB | stage | seconds | docs/s | peak MB |", "|---|---|---|---|---|---|"]
    for row in rows:
        for stage, r in row["stages"].items():
            lines.append(
                f"| {row['docs']:,} | {row['raw_mb']:.0f} | {stage} | {r['seconds']:.1f} "
                f"| {row['docs'] / r['seconds']:,.0f} | {r['peak_mb']:.0f} |"
            )
        f = row["floor"]
        lines.append(
            f"| {row['docs']:,} | {row['raw_mb']:.0f} | floor: single-pass Polars "
            f"| {f['seconds']:.1f} | {row['docs'] / f['seconds']:,.0f} | {f['peak_mb']:.0f} |"
        )
    lines.append("")
    for row in rows:
        same = sum(row["stages"][s]["seconds"] for s in ("score", "order"))
        publish = row["stages"]["publish"]["seconds"]
        floor = row["floor"]["seconds"]
        lines.append(
            f"{row['docs']:,} docs: the same work (score + order) {same:.1f} s vs floor "
            f"{floor:.1f} s, ratio {same / floor:.2f}; with publish (parts, tokens, plots, "
            f"manifest) {same + publish:.1f} s, ratio {(same + publish) / floor:.2f}"
        )
    if len(rows) == 2:
        small, large = rows
        growth = large["docs"] / small["docs"]
        for stage in STAGES:
            mem = large["stages"][stage]["peak_mb"] / small["stages"][stage]["peak_mb"]
            lines.append(f"{stage}: {growth:.0f}x the documents -> {mem:.2f}x the peak memory")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--stage", nargs=2, metavar=("STAGE", "ROOT"))
    parser.add_argument("--floor", metavar="ROOT")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    if args.stage:
        run_stage(args.stage[0], Path(args.stage[1]))
        return
    if args.floor:
        from floor_polars import run_floor

        run_floor(Path(args.floor))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="raising-bench-"))
    rows = [bench_size(n, work) for n in args.sizes]
    sys.stdout.write(report(rows) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
