"""Worker processes for `raise_shard` runs (`raising run --parallel`), startable before the
parent imports Dagster: each spawned worker imports Dagster, the definitions and the stages
while the parent does the same, instead of after it. This module imports only the standard
library, so starting workers costs the parent nothing it would not pay anyway."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


def start_shard_workers(count: int) -> ProcessPoolExecutor:
    """`count` spawned worker processes (spawned: none inherits the parent's Polars or DuckDB
    threads), started now and importing what a shard run needs."""
    pool = ProcessPoolExecutor(
        max_workers=count, mp_context=multiprocessing.get_context("spawn"), initializer=_warm
    )
    for _ in range(count):  # the pool starts a process for each task submitted while none idles
        pool.submit(os.getpid)
    return pool


def _warm() -> None:
    import raising_dagster.runner  # noqa: F401 - Dagster, the definitions, the stages
