"""Dynamic partitions per instance: register N shard keys and list them, on the embedded SQLite
instance and on PostgreSQL (a throwaway server on 127.0.0.1), as the shard sensor does.

For each N the keys are added in one call (what one sensor tick does with N new shards) and, in
a fresh instance, in batches of 1,000; then listed (`get_dynamic_partitions`, what every run and
the UI's partition views call) and looked up once (`has_dynamic_partition`).

Usage: python benchmarks/bench_partitions.py [--sizes 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dagster import DagsterInstance  # noqa: E402

from raising_dagster.partitions import raw_shards  # noqa: E402
from tests.cluster.daemon import open_instance, write_instance_yaml  # noqa: E402
from tests.cluster.postgres import (  # noqa: E402
    PostgresServer,
    throwaway_postgres,
    unavailable_reason,
)

BATCH = 1_000


@contextmanager
def fresh_instance(storage: str, server: PostgresServer | None) -> Iterator[DagsterInstance]:
    with tempfile.TemporaryDirectory(prefix="bench-partitions-") as root:
        home = Path(root) / "home"
        if storage == "postgres":
            assert server is not None
            url = server.create_database("partitions")
            os.environ["DAGSTER_PG_URL"] = url.replace("postgresql://", "postgresql+psycopg2://")
        write_instance_yaml(home, postgres=storage == "postgres")
        with open_instance(home) as instance:
            yield instance


def measure(storage: str, server: PostgresServer | None, n: int, batch: int | None) -> dict:
    keys = [f"shard-{i:07d}.jsonl" for i in range(n)]
    result: dict[str, object] = {"storage": storage, "partitions": n, "batch": batch or n}
    with fresh_instance(storage, server) as instance:
        started = time.perf_counter()
        try:
            for i in range(0, n, batch or n):
                instance.add_dynamic_partitions(raw_shards.name, keys[i : i + (batch or n)])
        except Exception as exc:  # the figure is where and how it breaks
            result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            return result
        result["register_s"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        listed = instance.get_dynamic_partitions(raw_shards.name)
        result["list_s"] = round(time.perf_counter() - started, 3)
        assert len(listed) == n
        started = time.perf_counter()
        assert instance.has_dynamic_partition(raw_shards.name, keys[-1])
        result["lookup_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 40_000, 100_000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    reason = unavailable_reason()
    storages = ["sqlite"] + ([] if reason else ["postgres"])
    if reason:
        sys.stdout.write(f"postgres skipped: {reason}\n")
    with throwaway_postgres() if not reason else _nothing() as server:
        for n in args.sizes:
            for storage in storages:
                for batch in (None, BATCH):
                    result = measure(storage, server, n, batch)
                    results.append(result)
                    sys.stdout.write(json.dumps(result) + "\n")
                    sys.stdout.flush()
    sys.stdout.write(
        "\n| storage | partitions | added | register s | list s | lookup ms |\n"
        "|---|---|---|---|---|---|\n"
    )
    for r in results:
        added = "one call" if r["batch"] == r["partitions"] else f"batches of {r['batch']}"
        figures = (
            f"{r['register_s']} | {r['list_s']} | {r['lookup_ms']}"
            if "error" not in r
            else f"fails: {r['error']} | | "
        )
        sys.stdout.write(f"| {r['storage']} | {r['partitions']:,} | {added} | {figures} |\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
