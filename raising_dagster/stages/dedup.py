"""Duplicate documents across shards: exact (same text hash) and, optionally, near (MinHash).

The first document in (shard, line) order is kept; every later copy is listed with the kept one
it repeats, and leaves the curriculum with that reason (stages/order.py `excluded`). Near
duplicates are found with MinHash over word shingles and locality-sensitive hashing (the `rensa`
library, Rust), then confirmed by the estimated Jaccard similarity against `threshold`.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl

from raising_dagster.config import DedupSettings
from raising_dagster.schema import DUPLICATES_SCHEMA
from raising_dagster.stages.order import sql_files

_WORD = re.compile(r"\w+")
_BATCH = 10_000


def exact_duplicates(con: duckdb.DuckDBPyConnection, raw_files: list[Path]) -> pl.DataFrame:
    """Documents whose text hash repeats an earlier document's (shard, line order)."""
    return con.sql(
        f"""WITH r AS (
                SELECT shard, doc_id, input_sha,
                       first_value(shard) OVER w AS kept_shard,
                       first_value(doc_id) OVER w AS kept_doc_id,
                       row_number() OVER w AS n
                FROM read_parquet({sql_files(raw_files)})
                WINDOW w AS (PARTITION BY input_sha ORDER BY shard, line)
            )
            SELECT shard, doc_id, 'exact_duplicate' AS reason, kept_shard, kept_doc_id,
                   1.0 AS similarity
            FROM r WHERE n > 1 ORDER BY shard, doc_id"""
    ).pl()


def shingles(text: str, size: int) -> list[str]:
    """Lower-case word `size`-grams of a text (the whole text when shorter)."""
    words = _WORD.findall(text.lower())
    if len(words) <= size:
        return [" ".join(words)] if words else [""]
    return [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]


def near_duplicates(
    con: duckdb.DuckDBPyConnection,
    raw_files: list[Path],
    settings: DedupSettings,
    skip: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Documents whose MinHash Jaccard estimate with an earlier document reaches the threshold
    (documents in `skip`, e.g. exact duplicates, are neither kept nor compared)."""
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(
        threshold=settings.threshold, num_perm=settings.num_perm, num_bands=settings.num_bands
    )
    skipped = set() if skip is None else set(zip(skip["shard"], skip["doc_id"], strict=True))
    kept: list[tuple[str, str, RMinHash]] = []
    found = []
    result = con.execute(
        f"SELECT shard, doc_id, text FROM read_parquet({sql_files(raw_files)}) ORDER BY shard, line"
    )
    while rows := result.fetchmany(_BATCH):
        for shard, doc_id, text in rows:
            if (shard, doc_id) in skipped:
                continue
            minhash = RMinHash(num_perm=settings.num_perm, seed=settings.seed)
            minhash.update(shingles(text, settings.shingle_words))
            best = None
            for index in lsh.query(minhash):
                similarity = minhash.jaccard(kept[index][2])
                if similarity >= settings.threshold and (best is None or index < best[0]):
                    best = (index, similarity)
            if best is None:
                lsh.insert(len(kept), minhash)
                kept.append((shard, doc_id, minhash))
                continue
            other = kept[best[0]]
            found.append((shard, doc_id, "near_duplicate", other[0], other[1], round(best[1], 4)))
    return pl.DataFrame(found, schema=DUPLICATES_SCHEMA, orient="row").sort("shard", "doc_id")


def find_duplicates(
    con: duckdb.DuckDBPyConnection, raw_files: list[Path], settings: DedupSettings
) -> pl.DataFrame:
    """Every document that repeats an earlier one, with the kept one and how alike they are."""
    parts = [pl.DataFrame(schema=DUPLICATES_SCHEMA)]
    exact = exact_duplicates(con, raw_files).cast(DUPLICATES_SCHEMA) if settings.exact else None
    if exact is not None:
        parts.append(exact)
    if settings.near:
        parts.append(near_duplicates(con, raw_files, settings, exact))
    return pl.concat(parts).sort("shard", "doc_id")
