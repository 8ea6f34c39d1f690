"""The generation cache: finished rewrites stored with the data, content-addressed, so a re-run,
backfill or resumed crashed run makes no teacher call for work already done.

key = sha256(stage, prompt hash, backend, model id and revision, generation signature, sampling
parameters, seed, input hash). Entries are append-only Parquet files under
`<store>/teacher_cache/<stage>/part-*.parquet` (one per finished batch, written atomically), which
concurrent runs of different partitions can write side by side; `prune` compacts them.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from raising_dagster.config import sha256_hex
from raising_dagster.store import write_parquet
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


class GenerationCache:
    """Parquet-backed cache entries of one store folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _files(self, stage: str | None = None) -> list[Path]:
        pattern = f"{stage}/part-*.parquet" if stage else "*/part-*.parquet"
        return sorted(self.root.glob(pattern)) if self.root.is_dir() else []

    def get_many(self, stage: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored entries among `keys`, by key."""
        files = self._files(stage)
        if not files or not keys:
            return {}
        found = (
            pl.scan_parquet(files, schema=CACHE_SCHEMA)
            .filter(pl.col("key").is_in(list(keys)))
            .unique("key", keep="any")
            .collect()
        )
        return {row["key"]: row for row in found.iter_rows(named=True)}

    def put_many(self, stage: str, rows: Sequence[dict[str, Any]]) -> None:
        """Store entries as one new Parquet file (atomic: a crash leaves no half file)."""
        if rows:
            frame = pl.DataFrame(list(rows), schema=CACHE_SCHEMA)
            write_parquet(frame, self.root / stage / f"part-{uuid.uuid4().hex}.parquet")

    def scan(self) -> pl.LazyFrame | None:
        files = self._files()
        return pl.scan_parquet(files, schema=CACHE_SCHEMA) if files else None

    def stats(self) -> list[dict[str, Any]]:
        """Per stage: entries, distinct keys, fallbacks, files, bytes, models and prompts."""
        lazy = self.scan()
        if lazy is None:
            return []
        rows = (
            lazy.group_by("stage")
            .agg(
                entries=pl.len(),
                keys=pl.col("key").n_unique(),
                fallbacks=pl.col("fallback_reason").is_not_null().sum(),
                models=pl.coalesce("tried_model", "teacher_model").unique().sort().str.join(", "),
                prompts=pl.col("prompt_id").unique().sort().str.join(", "),
                newest=pl.col("created_at").max(),
            )
            .sort("stage")
            .collect()
            .to_dicts()
        )
        for row in rows:
            files = self._files(row["stage"])
            row["files"] = len(files)
            row["bytes"] = sum(f.stat().st_size for f in files)
        return rows

    def prune(
        self,
        older_than: timedelta | None = None,
        keep_prompt_shas: set[str] | None = None,
        drop_fallbacks: bool = False,
        dry_run: bool = False,
    ) -> dict[str, int]:
        """Drop duplicates and the entries selected, and compact each stage into one file."""
        report = {"before": 0, "after": 0, "files_before": 0}
        for stage_dir in sorted(p for p in self.root.glob("*") if p.is_dir()):
            files = self._files(stage_dir.name)
            if not files:
                continue
            frame = pl.read_parquet(files, schema=CACHE_SCHEMA)
            kept = frame.unique("key", keep="last", maintain_order=True)
            if older_than is not None:
                cutoff = datetime.now(UTC) - older_than
                kept = kept.filter(pl.col("created_at") >= cutoff)
            if keep_prompt_shas is not None:
                kept = kept.filter(pl.col("key_prompt_sha").is_in(list(keep_prompt_shas)))
            if drop_fallbacks:
                kept = kept.filter(pl.col("fallback_reason").is_null())
            report["before"] += frame.height
            report["after"] += kept.height
            report["files_before"] += len(files)
            if dry_run:
                continue
            if kept.height:
                write_parquet(kept, stage_dir / f"part-{uuid.uuid4().hex}.parquet")
            for old in files:
                old.unlink()
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


def _from_row(row: dict[str, Any]) -> Rewrite:
    lineage = {k: row[k] for k in LINEAGE_FIELDS if k != "cache_hit"}
    return Rewrite(row["text"], Lineage(**lineage, cache_hit=True))
