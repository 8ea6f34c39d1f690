"""`make bench-backfill`: a backfill of many small shards through Dagster's own machinery.

Synthetic shards (`raising synth`), the template teacher, a real instance (a throwaway PostgreSQL
server when one can start here, else SQLite), `dagster-daemon run` and `dagster job backfill
-j raise_shard --all`: the run queue (QueuedRunCoordinator) launches one `raise_shard` run per
shard, each in its own process, at most N at once (max_concurrent_runs and the `teacher` pool's
limit both set to N). For each N it reports the wall time (submission to the last run's end)
against the sum of every step's execution time as the instance recorded it (the compute), and
their ratio: Dagster's overhead (process start, imports, event writes, queueing) on top of the
work, and what N runs at once on this machine's cores buy back.

Usage: python benchmarks/bench_backfill.py [--shards 200] [--docs-per-shard 5] [--parallel 1 4]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from raising_dagster.partitions import raw_shards  # noqa: E402
from raising_dagster.stages.synth import write_synth_corpus  # noqa: E402
from tests.cluster.daemon import (  # noqa: E402
    dagster_cli,
    dagster_env,
    max_overlap,
    open_instance,
    run_intervals,
    running_daemon,
    step_intervals,
    wait_for_runs,
    write_instance_yaml,
)
from tests.cluster.postgres import throwaway_postgres, unavailable_reason  # noqa: E402


def bench_one(root: Path, landing: Path, parallel: int, pg_url: str | None) -> dict[str, object]:
    """One backfill of every shard in `landing` with at most `parallel` runs at once."""
    home, store = root / f"home-{parallel}", root / f"store-{parallel}"
    write_instance_yaml(
        home,
        postgres=pg_url is not None,
        max_concurrent_runs=parallel,
        teacher_pool_limit=parallel,
        dequeue_interval_s=1,
    )
    extra = {
        "RAISING_LANDING_DIR": str(landing),
        "RAISING_STORE_DIR": str(store),
        "RAISING_TEACHER__BACKEND": "template",
    }
    if pg_url:
        extra["DAGSTER_PG_URL"] = pg_url
    env = dagster_env(home, extra)
    shards = sorted(p.name for p in landing.iterdir())
    if pg_url:  # the instance reads DAGSTER_PG_URL from this process's environment too
        import os

        os.environ["DAGSTER_PG_URL"] = pg_url
    log = root / f"daemon-{parallel}.log"
    with open_instance(home) as instance, running_daemon(env, log):
        instance.add_dynamic_partitions(raw_shards.name, shards)
        time.sleep(5)  # let the daemon start its code server before the clock starts
        started = time.time()
        dagster_cli(env, "job", "backfill", "-j", "raise_shard", "--all", "--noprompt")
        submitted = time.time()
        runs = wait_for_runs(instance, "raise_shard", len(shards), 4 * 3600, log)
        failed = [r.run_id for r in runs if r.status.value != "SUCCESS"]
        run_ids = [r.run_id for r in runs]
        spans = run_intervals(instance, run_ids)
        steps = step_intervals(instance, run_ids)
    ended = max(s.end for s in spans)
    wall = ended - started
    compute = sum(s.end - s.start for s in steps)
    run_seconds = [s.end - s.start for s in spans]
    return {
        "parallel": parallel,
        "shards": len(shards),
        "failed_runs": len(failed),
        "wall_s": round(wall, 1),
        "submit_s": round(submitted - started, 1),
        "queue_wall_s": round(ended - min(s.start for s in spans), 1),
        "compute_s": round(compute, 1),
        "overhead_ratio": round(wall / compute, 2),
        "mean_run_s": round(statistics.mean(run_seconds), 2),
        "mean_compute_per_shard_s": round(compute / len(shards), 2),
        "max_runs_at_once": max_overlap(spans),
        "shards_per_min": round(len(shards) / wall * 60, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--docs-per-shard", type=int, default=5)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--sqlite", action="store_true", help="SQLite even if Postgres can start")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    # stopped with SIGTERM: unwind, so the daemon and the throwaway server are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-backfill-")))
        landing = root / "landing"
        write_synth_corpus(landing, args.shards * args.docs_per_shard, args.shards, seed=7)
        reason = None if not args.sqlite else "--sqlite"
        reason = reason or unavailable_reason()
        server = None if reason else stack.enter_context(throwaway_postgres())
        storage = "postgres" if server else f"sqlite ({reason})"
        sys.stdout.write(f"{args.shards} shards of {args.docs_per_shard} documents; {storage}\n")
        for parallel in args.parallel:
            pg_url = (
                server.create_database("bench").replace("postgresql://", "postgresql+psycopg2://")
                if server
                else None
            )
            result = {
                "storage": storage.split(" ")[0],
                **bench_one(root, landing, parallel, pg_url),
            }
            results.append(result)
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
    # Steps of runs at once share the cores, so their own sum grows with N; the work itself is
    # the sum of the steps when runs go one at a time (N = 1), the reference for every N.
    sequential = next((r["compute_s"] for r in results if r["parallel"] == 1), None)
    header = (
        "| runs at once | shards | wall s | sum of steps s | wall / sum of steps | "
        "wall / sequential compute | shards/min |"
    )
    sys.stdout.write("\n" + header + "\n|---|---|---|---|---|---|---|\n")
    for r in results:
        r["wall_over_sequential_compute"] = (
            round(float(r["wall_s"]) / float(sequential), 2) if sequential else None
        )
        sys.stdout.write(
            f"| {r['parallel']} | {r['shards']} | {r['wall_s']} | {r['compute_s']} | "
            f"{r['overhead_ratio']} | {r['wall_over_sequential_compute']} | "
            f"{r['shards_per_min']} |\n"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
