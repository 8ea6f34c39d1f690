"""Which registered shards a publication includes: the active set, computed in one place.

A shard is active when it is registered (a partition of `raw_shards`), its file is a shard of the
landing folder now, and it is not withdrawn. Every registered shard left out is named with a
reason: `removed_from_landing` (the file is gone), `skipped:<reason>` (the file is there but
`scan_landing` skips it, e.g. it became unreadable), or `withdrawn:<reason>` when a person
withdrew it (a license or privacy request, `raising withdraw --shard`). Nothing derived from a
left-out shard is published.

Documents are withdrawn the same way (`Withdrawals`, `drop_documents`): every record derived from
a withdrawn document leaves the next publication, which lists the withdrawal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from raising_dagster.stages.ingest import LandingScan, ShardError, partition_key
from raising_dagster.stages.order import run_sql, sql_literal
from raising_dagster.store import StoreLayout, write_parquet

REMOVED = "removed_from_landing"


@dataclass(frozen=True)
class ShardSelection:
    """The shards a publication includes, and those it leaves out with a reason."""

    active: list[str]
    withdrawn: dict[str, str] = field(default_factory=dict)

    def withdrawn_records(self) -> list[dict[str, str]]:
        return [{"shard": k, "reason": r} for k, r in sorted(self.withdrawn.items())]


def _key(name: str) -> str | None:
    try:
        return partition_key(name)
    except ShardError:
        return None


def select_shards(
    registered: Sequence[str], scan: LandingScan, withdraw: Mapping[str, str] | None = None
) -> ShardSelection:
    """The active shards among the registered ones (module doc); `withdraw` maps shards to
    leave out to the reason why."""
    skipped = {_key(s.name): s.reason for s in scan.skipped}
    active, withdrawn = [], {}
    for key in sorted(set(registered)):
        if withdraw and key in withdraw:
            withdrawn[key] = withdrawal_reason(withdraw[key])
        elif key in scan.shards:
            active.append(key)
        else:
            withdrawn[key] = f"skipped:{skipped[key]}" if key in skipped else REMOVED
    return ShardSelection(active, withdrawn)


# Withdrawals: documents or whole shards a person asked to take out of the corpus (a license or
# privacy request). Kept in STORE/withdrawals.json; applied at the next publication.


@dataclass(frozen=True)
class Withdrawals:
    """The standing withdrawals: shards (key -> reason) and documents ((shard, doc_id) ->
    reason)."""

    shards: dict[str, str] = field(default_factory=dict)
    documents: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Withdrawals:
        """The withdrawals file, or none withdrawn when it does not exist."""
        if not path.exists():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            shards={s["shard"]: s["reason"] for s in data.get("shards", [])},
            documents={(d["shard"], d["doc_id"]): d["reason"] for d in data.get("documents", [])},
        )

    def to_json(self) -> dict[str, list[dict[str, str]]]:
        return {
            "shards": [{"shard": k, "reason": r} for k, r in sorted(self.shards.items())],
            "documents": [
                {"shard": s, "doc_id": d, "reason": r}
                for (s, d), r in sorted(self.documents.items())
            ],
        }

    def with_shards(self, keys: Sequence[str], reason: str) -> Withdrawals:
        return Withdrawals({**self.shards, **dict.fromkeys(keys, reason)}, dict(self.documents))

    def with_documents(self, docs: Sequence[tuple[str, str]], reason: str) -> Withdrawals:
        return Withdrawals(dict(self.shards), {**self.documents, **dict.fromkeys(docs, reason)})


def withdrawal_reason(reason: str) -> str:
    """The reason a left-out shard or dropped document is listed with."""
    return f"withdrawn:{reason}"


def drop_documents(
    con: duckdb.DuckDBPyConnection,
    ordered_file: Path,
    exclusions_file: Path,
    documents: Mapping[tuple[str, str], str],
) -> list[dict[str, Any]]:
    """Take every record derived from the withdrawn `documents` ((shard, doc_id) -> reason) out of
    the ordered curriculum: the other records keep their order, stage and text, positions are
    renumbered 0..n-1; each document is listed in the exclusions table (variant `all`, reason
    `withdrawn:<reason>`). Returns one entry per withdrawn document with the records dropped."""
    if not documents:
        return []
    withdrawn = pl.DataFrame(
        [{"shard": s, "doc_id": d, "reason": r} for (s, d), r in sorted(documents.items())],
        schema={"shard": pl.String, "doc_id": pl.String, "reason": pl.String},
    )
    con.register("withdrawn_docs", withdrawn)
    try:
        dropped = dict(
            ((shard, doc_id), n)
            for shard, doc_id, n in run_sql(
                con,
                f"""SELECT w.shard, w.doc_id, count(o.position)
                    FROM withdrawn_docs w LEFT JOIN read_parquet({sql_literal(ordered_file)}) o
                      ON o.shard = w.shard AND o.source_doc_id = w.doc_id
                    GROUP BY ALL""",
            )
        )
        tmp = ordered_file.with_name(f".{ordered_file.name}.withdrawn.tmp")
        run_sql(
            con,
            f"""COPY (
                  SELECT * REPLACE (row_number() OVER (ORDER BY position) - 1 AS position)
                  FROM read_parquet({sql_literal(ordered_file)}) o
                  ANTI JOIN withdrawn_docs w ON o.shard = w.shard AND o.source_doc_id = w.doc_id
                  ORDER BY position
                ) TO {sql_literal(tmp)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 20000)""",
        )
        tmp.replace(ordered_file)
        excluded = con.sql(
            f"""SELECT shard, doc_id, variant, reason
                FROM read_parquet({sql_literal(exclusions_file)}) e
                ANTI JOIN withdrawn_docs w ON e.shard = w.shard AND e.doc_id = w.doc_id
                UNION ALL
                SELECT shard, doc_id, 'all', 'withdrawn:' || reason FROM withdrawn_docs
                ORDER BY shard, doc_id, variant"""
        ).pl()
    finally:
        con.unregister("withdrawn_docs")
    write_parquet(excluded, exclusions_file)
    return [
        {
            "shard": s,
            "doc_id": d,
            "reason": withdrawal_reason(r),
            "records_dropped": int(dropped.get((s, d), 0)),
        }
        for (s, d), r in sorted(documents.items())
    ]


def find_documents(layout: StoreLayout, idents: Sequence[str]) -> list[tuple[str, str]]:
    """The raw documents of the store that ids name: `shard/doc_id`, a training record's
    `shard/doc_id#variant`, or a bare `doc_id` found in exactly one shard. Raises LookupError
    naming the ids that match nothing, or several shards."""
    raw_files = sorted((layout.root / "raw_docs").glob("*.parquet"))
    if not idents:
        return []
    if not raw_files:
        raise LookupError(f"no raised shards in {layout.root}")
    docs = pl.scan_parquet(raw_files).select("shard", "doc_id")
    found, problems = [], []
    for ident in idents:
        base = ident.split("#", 1)[0]
        shard, _, doc = base.partition("/")
        qualified = docs.filter((pl.col("shard") == shard) & (pl.col("doc_id") == doc))
        bare = docs.filter(pl.col("doc_id") == base)
        matches = (qualified.collect() if doc else pl.DataFrame()).rows() or bare.collect().rows()
        if not matches:
            problems.append(f"{ident!r} names no raw document")
        elif len(matches) > 1:
            shards = ", ".join(sorted(s for s, _ in matches))
            problems.append(
                f"{ident!r} is a document of several shards ({shards}): name one as shard/id"
            )
        else:
            found.append(matches[0])
    if problems:
        raise LookupError("; ".join(problems))
    return sorted(set(found))
