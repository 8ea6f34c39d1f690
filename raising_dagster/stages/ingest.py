"""Read one raw shard into documents and quarantine records: nothing is dropped silently."""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import zstandard

from raising_dagster.config import sha256_hex
from raising_dagster.schema import QUARANTINE_SCHEMA, RAW_SCHEMA
from raising_dagster.stages.kinds import KINDS, infer_kind
from raising_dagster.stages.safety import safety_flag

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".jsonl.zst", ".ndjson.zst")
SHARD_SUFFIXES = (*JSONL_SUFFIXES, ".parquet", ".txt")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_KEY = 200
_EXCERPT = 300


class ShardError(ValueError):
    """A shard that cannot be read at all (unknown format, unreadable file, unsafe name)."""


def is_shard(path: Path) -> bool:
    return (
        path.is_file()
        and path.name.lower().endswith(SHARD_SUFFIXES)
        and not path.name.startswith(".")
    )


def partition_key(name: str) -> str:
    """A safe Dagster partition key for a shard name, or ShardError saying why there is none."""
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ShardError(f"shard name {name!r} contains control characters; rename the file")
    key = _UNSAFE.sub("_", name.strip()).strip("_")
    if not key or key.startswith(".") or ".." in key or len(key) > _MAX_KEY:
        raise ShardError(
            f"shard name {name!r} cannot be made a safe partition key (got {key!r}); use letters, "
            f"digits, '.', '_' or '-', no leading dot, no '..', at most {_MAX_KEY} characters"
        )
    return key


def list_shards(landing_dir: Path) -> dict[str, Path]:
    """Every shard file in the landing folder by partition key; refuses two files on one key."""
    if not landing_dir.is_dir():
        raise ShardError(f"landing folder {landing_dir} does not exist")
    shards: dict[str, Path] = {}
    for path in sorted(landing_dir.iterdir()):
        if not is_shard(path):
            continue
        key = partition_key(path.name)
        if key in shards:
            raise ShardError(
                f"shards {shards[key].name!r} and {path.name!r} map to one key {key!r}"
            )
        shards[key] = path
    return shards


@dataclass(frozen=True)
class ShardRead:
    """What one shard yields: documents, quarantined records, and the count of records seen."""

    docs: pl.DataFrame
    quarantine: pl.DataFrame
    records_in: int
    content_sha: str


@dataclass
class _Collector:
    shard: str
    docs: list[dict[str, Any]]
    bad: list[dict[str, Any]]

    def quarantine(self, line: int, reason: str, detail: str, raw: str) -> None:
        self.bad.append(
            {
                "shard": self.shard,
                "line": line,
                "reason": reason,
                "detail": detail,
                "raw": raw[:_EXCERPT],
            }
        )

    def record(self, line: int, obj: dict[str, Any], raw: str) -> None:
        text = obj.get("text")
        if "text" not in obj or text is None:
            return self.quarantine(line, "missing_text", "record has no 'text' field", raw)
        if not isinstance(text, str):
            return self.quarantine(line, "wrong_type", f"'text' is {type(text).__name__}", raw)
        if not text.strip():
            return self.quarantine(line, "empty_text", "'text' is empty or whitespace", raw)
        for field in ("id", "title", "kind"):
            value = obj.get(field)
            if value is not None and not isinstance(value, str | int):
                return self.quarantine(
                    line, "wrong_type", f"'{field}' is {type(value).__name__}", raw
                )
        self.docs.append(_doc(self.shard, line, obj, text))
        return None


def _doc(shard: str, line: int, obj: dict[str, Any], text: str) -> dict[str, Any]:
    text = unicodedata.normalize("NFC", text).strip()
    input_sha = sha256_hex(text)
    doc_id = obj.get("id")
    doc_id = str(doc_id) if doc_id not in (None, "") else f"{shard}:{line}:{input_sha[:12]}"
    title = obj.get("title")
    kind = str(obj.get("kind") or "").lower()
    meta = {k: v for k, v in obj.items() if k not in ("id", "text", "title", "kind")}
    return {
        "doc_id": doc_id,
        "shard": shard,
        "line": line,
        "title": str(title) if title not in (None, "") else None,
        "kind": kind if kind in KINDS else infer_kind(text, None if title is None else str(title)),
        "text": text,
        "meta": json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str),
        "input_sha": input_sha,
    }


def _decompress(name: str, raw: bytes) -> bytes:
    name = name.lower()
    try:
        if name.endswith(".gz"):
            return gzip.decompress(raw)
        if name.endswith(".zst"):
            return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        raise ShardError(f"shard {name} is not valid compressed data: {exc}") from exc
    return raw


def _read_jsonl(data: bytes, out: _Collector) -> int:
    lines = data.split(b"\n")
    if lines and lines[-1].strip() == b"":
        lines.pop()
    for number, raw_line in enumerate(lines, start=1):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.quarantine(number, "invalid_utf8", str(exc), raw_line.decode("utf-8", "replace"))
            continue
        if not line.strip():
            out.quarantine(number, "empty_line", "blank line", line)
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            out.quarantine(number, "invalid_json", str(exc), line)
            continue
        if not isinstance(obj, dict):
            out.quarantine(
                number, "not_an_object", f"JSON {type(obj).__name__}, not an object", line
            )
            continue
        out.record(number, obj, line)
    return len(lines)


def _read_parquet(path: Path, out: _Collector) -> int:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several error types for corrupt files
        raise ShardError(f"shard {path.name} is not readable Parquet: {exc}") from exc
    for number, row in enumerate(frame.iter_rows(named=True), start=1):
        out.record(number, row, json.dumps(row, default=str, ensure_ascii=False))
    return frame.height


def _read_txt(path: Path, data: bytes, out: _Collector) -> int:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        out.quarantine(1, "invalid_utf8", str(exc), data[:_EXCERPT].decode("utf-8", "replace"))
        return 1
    title = path.stem.replace("_", " ").replace("-", " ")
    out.record(1, {"text": text, "title": title, "source": path.name}, text)
    return 1


def read_shard(path: Path) -> ShardRead:
    """Read a JSONL(.gz/.zst), Parquet or .txt shard; bad records go to quarantine with a reason."""
    key = partition_key(path.name)
    if not is_shard(path):
        raise ShardError(
            f"{path} is not a shard: expected a file ending in {', '.join(SHARD_SUFFIXES)}"
        )
    out = _Collector(shard=key, docs=[], bad=[])
    data = path.read_bytes()
    name = path.name.lower()
    if name.endswith(".parquet"):
        records_in = _read_parquet(path, out)
    elif name.endswith(".txt"):
        records_in = _read_txt(path, data, out)
    else:
        records_in = _read_jsonl(_decompress(path.name, data), out)
    docs = pl.DataFrame(
        out.docs, schema={k: v for k, v in RAW_SCHEMA.items() if k != "safety_flag"}
    )
    docs = docs.with_columns(safety_flag=safety_flag(pl.col("text")))
    duplicated = docs.filter(
        pl.col("doc_id").is_duplicated() & ~pl.col("doc_id").is_first_distinct()
    )
    for row in duplicated.iter_rows(named=True):
        out.quarantine(
            row["line"], "duplicate_id", f"id {row['doc_id']!r} seen earlier in shard", row["text"]
        )
    docs = docs.filter(~pl.col("line").is_in(duplicated["line"].implode()))
    quarantine = pl.DataFrame(out.bad, schema=QUARANTINE_SCHEMA).sort("line")
    return ShardRead(
        docs=docs, quarantine=quarantine, records_in=records_in, content_sha=sha256_hex(data)
    )
