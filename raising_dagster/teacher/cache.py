"""The generation cache: finished rewrites stored with the data, content-addressed, so a re-run,
backfill or resumed crashed run makes no teacher call for work already done.

key = sha256(stage, prompt hash, backend, model id and revision, generation signature, sampling
parameters, seed, input hash). Entries live in one SQLite database per stage (texts as zstd),
`<store>/teacher_cache/<stage>.sqlite3`, the key its primary key: a lookup is an index search, so
a batch's lookups cost O(batch * log entries) however many batches were stored (the earlier
layout, one Parquet file per batch scanned on every lookup, grew quadratically over a run; such
files are imported once and removed). Write-ahead logging lets runs of different partitions read
and write one database at once (writers take turns, each batch one transaction); the store must
be on a local file system, as SQLite requires. Columns follow `CACHE_SCHEMA`; a column added
there is added to existing databases (older entries hold NULL).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import zstandard

from raising_dagster.config import sha256_hex
from raising_dagster.teacher.base import (
    LINEAGE_COLUMNS,
    LINEAGE_FIELDS,
    Lineage,
    Rewrite,
    RewriteRequest,
    Stage,
    Teacher,
)

log = logging.getLogger(__name__)

# An entry: its key, what it was made from, the text, and the record's lineage (teacher/base.py
# `Lineage`, the one lineage record of the stage schemas and the cache).
CACHE_SCHEMA: dict[str, pl.DataType] = {
    "key": pl.String(),
    "stage": pl.String(),
    "model_revision": pl.String(),
    "key_prompt_sha": pl.String(),
    "input_sha": pl.String(),
    "text": pl.String(),
    **{k: t for k, t in LINEAGE_COLUMNS.items() if k != "cache_hit"},
    "created_at": pl.Datetime("us", "UTC"),
}

TABLE = "entries"
_SUFFIX = ".sqlite3"
_LOOKUP_CHUNK = 500  # keys per SELECT ... IN (...), under SQLite's variable limit
_BUSY_TIMEOUT_S = 120.0  # how long a writer waits for another's transaction
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width UTC: text order is time order
_PAGE_CACHE_KIB = 65536  # keeps the key index's hot pages in memory as the store grows
_COMPRESSED = frozenset({"text"})  # stored as zstd BLOBs (a third of the bytes for prose)
_ZSTD = zstandard.ZstdCompressor(level=3)


def request_sha(request: RewriteRequest) -> str:
    """Hash of everything in a request that shapes its rewrite (texts, kind, title, values,
    safety flag)."""
    payload = {
        "text": request.text,
        "source_text": request.source_text,
        "kind": request.kind,
        "title": request.title,
        "values": [[v.name, v.description] for v in request.values],
        "safety_flag": request.safety_flag,
        "topics": list(request.topics),
    }
    return sha256_hex(json.dumps(payload, sort_keys=True))


def _sql_type(dtype: pl.DataType | None) -> str:
    if dtype is None or dtype == pl.String() or isinstance(dtype, pl.Datetime):
        return "TEXT"
    if dtype.is_integer() or dtype == pl.Boolean():
        return "INTEGER"
    return "REAL" if dtype.is_float() else "BLOB"


def _to_sql(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(_TIME_FORMAT)
    if name in _COMPRESSED and isinstance(value, str):
        return _ZSTD.compress(value.encode("utf-8"))
    return value


def _from_sql(name: str, value: Any) -> Any:
    dtype = CACHE_SCHEMA.get(name)
    if isinstance(value, bytes) and name in _COMPRESSED:
        return zstandard.ZstdDecompressor().decompress(value).decode("utf-8")
    if value is None or dtype is None:
        return value
    if isinstance(dtype, pl.Datetime):
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)
    return bool(value) if dtype == pl.Boolean() else value


def _ident(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"cache column {name!r} is not an identifier")
    return f'"{name}"'


class GenerationCache:
    """The cache entries of one store folder, one SQLite database per stage."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._connections: dict[str, sqlite3.Connection] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def database(self, stage: str) -> Path:
        """The SQLite file of a stage."""
        return self.root / f"{stage}{_SUFFIX}"

    def _stages(self) -> list[str]:
        if not self.root.is_dir():
            return []
        stages = {p.name.removesuffix(_SUFFIX) for p in self.root.glob(f"*{_SUFFIX}")}
        stages |= {p.parent.name for p in self.root.glob("*/part-*.parquet")}  # not imported yet
        return sorted(stages)

    @contextmanager
    def _connect(self, stage: str) -> Iterator[sqlite3.Connection]:
        """The stage's connection, opened on first use (the database created, migrated and any
        legacy Parquet entries imported) and kept for this cache's life: closing the last
        connection checkpoints the log, which would cost a sync every batch. One thread at a
        time; a forked process opens its own."""
        with self._lock:
            if self._pid != os.getpid():
                self._connections, self._pid = {}, os.getpid()
            con = self._connections.get(stage)
            if con is None:
                self.root.mkdir(parents=True, exist_ok=True)
                con = sqlite3.connect(
                    self.database(stage),
                    timeout=_BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
                try:
                    # WAL + NORMAL: a commit survives a crash of the process; a power cut may
                    # lose the last batches, which are then generated again
                    con.execute("PRAGMA synchronous=NORMAL")
                    con.execute(f"PRAGMA cache_size=-{_PAGE_CACHE_KIB}")
                    self._prepare(con, stage)
                except BaseException:
                    con.close()
                    raise
                self._connections[stage] = con
            yield con

    def close(self) -> None:
        """Close the open databases (a later call opens them again)."""
        with self._lock:
            for con in self._connections.values():
                con.close()
            self._connections = {}

    def _prepare(self, con: sqlite3.Connection, stage: str) -> None:
        con.execute("PRAGMA journal_mode=WAL")
        legacy: list[Path] = []
        con.execute("BEGIN IMMEDIATE")
        try:
            columns = ", ".join(
                f"{_ident(n)} {_sql_type(t)}" for n, t in CACHE_SCHEMA.items() if n != "key"
            )
            con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, {columns})")
            self._add_columns(con, CACHE_SCHEMA)
            frames = []
            for file in sorted((self.root / stage).glob("part-*.parquet")):
                try:
                    frames.append(pl.read_parquet(file))
                except FileNotFoundError:  # imported and removed by another process meanwhile
                    continue
                legacy.append(file)
            if frames:
                frame = pl.concat(frames, how="diagonal_relaxed")
                self._insert(con, frame.to_dicts())
                log.info(
                    "imported %d cache entries of %s from %d Parquet files",
                    frame.height,
                    stage,
                    len(legacy),
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        for old in legacy:
            old.unlink(missing_ok=True)
        if legacy and not any((self.root / stage).iterdir()):
            (self.root / stage).rmdir()

    @staticmethod
    def _add_columns(con: sqlite3.Connection, wanted: dict[str, pl.DataType | None]) -> None:
        present = {row[1] for row in con.execute(f"PRAGMA table_info({TABLE})")}
        for name, dtype in wanted.items():
            if name not in present:
                con.execute(f"ALTER TABLE {TABLE} ADD COLUMN {_ident(name)} {_sql_type(dtype)}")

    def _insert(self, con: sqlite3.Connection, rows: Sequence[dict[str, Any]]) -> None:
        names = list(dict.fromkeys(n for row in rows for n in row))
        self._add_columns(con, {n: CACHE_SCHEMA.get(n) for n in names})
        columns = ", ".join(_ident(n) for n in names)
        marks = ", ".join("?" for _ in names)
        con.executemany(
            f"INSERT OR REPLACE INTO {TABLE} ({columns}) VALUES ({marks})",
            ([_to_sql(n, row.get(n)) for n in names] for row in rows),
        )

    def get_many(self, stage: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored entries among `keys`, by key (an index search per key)."""
        if not keys or stage not in self._stages():
            return {}
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        with self._connect(stage) as con:
            for i in range(0, len(unique), _LOOKUP_CHUNK):
                chunk = unique[i : i + _LOOKUP_CHUNK]
                cursor = con.execute(
                    f"SELECT * FROM {TABLE} WHERE key IN ({', '.join('?' for _ in chunk)})", chunk
                )
                names = [d[0] for d in cursor.description]
                for values in cursor:
                    row = {n: _from_sql(n, v) for n, v in zip(names, values, strict=True)}
                    found[row["key"]] = row
        return found

    def put_many(self, stage: str, rows: Sequence[dict[str, Any]]) -> None:
        """Store entries in one transaction (a crash leaves the batch whole or absent); a key
        stored again is replaced."""
        if not rows:
            return
        with self._connect(stage) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                self._insert(con, rows)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _files(self, stage: str) -> list[Path]:
        """The stage's database and any legacy Parquet files not imported yet."""
        legacy = sorted((self.root / stage).glob("part-*.parquet"))
        return [p for p in (self.database(stage),) if p.exists()] + legacy

    def _bytes(self, stage: str) -> int:
        base = self.database(stage)
        log_files = [base.with_name(base.name + s) for s in ("-wal", "-shm")]
        return sum(f.stat().st_size for f in self._files(stage) + log_files if f.exists())

    def stats(self) -> list[dict[str, Any]]:
        """Per stage: entries, distinct keys, fallbacks, files, bytes, models and prompts."""
        rows = []
        for stage in self._stages():
            with self._connect(stage) as con:
                entries, fallbacks, newest = con.execute(
                    f"SELECT count(*), count(fallback_reason), max(created_at) FROM {TABLE}"
                ).fetchone()
                models = [
                    r[0]
                    for r in con.execute(
                        f"SELECT DISTINCT coalesce(tried_model, teacher_model) FROM {TABLE}"
                    )
                ]
                prompts = [r[0] for r in con.execute(f"SELECT DISTINCT prompt_id FROM {TABLE}")]
            if not entries:
                continue
            rows.append(
                {
                    "stage": stage,
                    "entries": entries,
                    "keys": entries,  # the key is the primary key
                    "fallbacks": fallbacks,
                    "models": ", ".join(sorted(m for m in models if m is not None)),
                    "prompts": ", ".join(sorted(p for p in prompts if p is not None)),
                    "newest": _from_sql("created_at", newest),
                    "files": len(self._files(stage)),
                    "bytes": self._bytes(stage),
                }
            )
        return rows

    def prune(
        self,
        older_than: timedelta | None = None,
        keep_prompt_shas: set[str] | None = None,
        drop_fallbacks: bool = False,
        dry_run: bool = False,
    ) -> dict[str, int]:
        """Drop the entries selected (older than, prompt hash not kept, fallbacks) and compact
        each stage's database."""
        report = {"before": 0, "after": 0, "files_before": 0}
        for stage in self._stages():
            report["files_before"] += len(self._files(stage))
            conditions: list[str] = []
            params: list[Any] = []
            if older_than is not None:
                conditions.append("created_at < ?")
                params.append(_to_sql("created_at", datetime.now(UTC) - older_than))
            if keep_prompt_shas is not None:
                keep = sorted(keep_prompt_shas)
                conditions.append(
                    f"key_prompt_sha IS NULL OR key_prompt_sha NOT IN "
                    f"({', '.join('?' for _ in keep)})"
                    if keep
                    else "1"
                )
                params += keep
            if drop_fallbacks:
                conditions.append("fallback_reason IS NOT NULL")
            where = " OR ".join(f"({c})" for c in conditions) or "0"
            with self._connect(stage) as con:
                ((before,),) = con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()
                ((dropped,),) = con.execute(
                    f"SELECT count(*) FROM {TABLE} WHERE {where}", params
                ).fetchall()
                if not dry_run:
                    con.execute(f"DELETE FROM {TABLE} WHERE {where}", params)
                    con.execute("VACUUM")
                    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            report["before"] += before
            report["after"] += before - dropped
        return report


@dataclass
class CacheCounters:
    hits: int = 0
    misses: int = 0


class CachedTeacher:
    """Wraps any teacher: answers finished work from the cache, asks the inner teacher for the
    rest and stores its outputs (not those that fell back after a backend error)."""

    def __init__(self, inner: Teacher, cache: GenerationCache) -> None:
        self.inner = inner
        self.cache = cache
        self.backend = inner.backend
        self.model = inner.model
        self.counters = CacheCounters()

    @property
    def hits(self) -> int:
        return self.counters.hits

    @property
    def misses(self) -> int:
        return self.counters.misses

    def prompt_sha(self, stage: Stage) -> str:
        return self.inner.prompt_sha(stage)

    def _namespace(self, stage: Stage) -> str:
        inner: Any = self.inner
        parts = [
            stage,
            self.inner.prompt_sha(stage),
            self.backend,
            self.model,
            getattr(inner, "model_revision", ""),
            inner.signature(stage) if hasattr(inner, "signature") else "",
            inner.sampling_json(stage) if hasattr(inner, "sampling_json") else "",
        ]
        return sha256_hex(json.dumps(parts))

    def rewrite(self, stage: Stage, requests: Sequence[RewriteRequest]) -> list[Rewrite]:
        namespace = self._namespace(stage)
        input_shas = [request_sha(r) for r in requests]
        keys = [
            sha256_hex(f"{namespace}:{r.seed}:{s}")
            for r, s in zip(requests, input_shas, strict=True)
        ]
        found = self.cache.get_many(stage, keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.counters.hits += len(requests) - len(missing)
        self.counters.misses += len(missing)
        fresh = self.inner.rewrite(stage, [requests[i] for i in missing]) if missing else []
        if len(fresh) != len(missing):
            raise RuntimeError(f"inner teacher gave {len(fresh)} rewrites for {len(missing)}")
        now = datetime.now(UTC)
        rows = [
            self._row(stage, keys[i], requests[i], input_shas[i], rewrite, now)
            for i, rewrite in zip(missing, fresh, strict=True)
            if not (rewrite.lineage.fallback_reason or "").startswith("error:")
        ]
        self.cache.put_many(stage, rows)
        by_index = dict(zip(missing, fresh, strict=True))
        return [by_index[i] if i in by_index else _from_row(found[k]) for i, k in enumerate(keys)]

    def _row(
        self,
        stage: Stage,
        key: str,
        request: RewriteRequest,
        input_sha: str,
        rewrite: Rewrite,
        now: datetime,
    ) -> dict[str, Any]:
        lineage = {k: getattr(rewrite.lineage, k) for k in LINEAGE_FIELDS if k != "cache_hit"}
        return {
            "key": key,
            "stage": stage,
            "model_revision": getattr(self.inner, "model_revision", ""),
            "key_prompt_sha": self.inner.prompt_sha(stage),
            "input_sha": input_sha,
            "text": rewrite.text,
            **lineage,
            "created_at": now,
        }

    def close(self) -> None:
        self.inner.close()
        self.cache.close()


def _from_row(row: dict[str, Any]) -> Rewrite:
    lineage = {k: row[k] for k in LINEAGE_FIELDS if k != "cache_hit"}
    return Rewrite(row["text"], Lineage(**lineage, cache_hit=True))
