"""Read one raw shard into documents and quarantine records: nothing is dropped silently.

A landing folder is scanned once (`scan_landing`): every entry is a shard or is skipped with a
reason (`unsafe_name`, `key_collision`, `hidden_file`, `not_a_file`, `unsupported_format`,
`unreadable_file`). A shard's records are each kept or quarantined with a reason; a shard whose
content cannot be read at all (a Parquet file with a broken footer or pages) yields no record and
names its `file_error`. Compressed JSON Lines (gzip, zstd, bzip2, xz; concatenated streams too)
are decoded as far as they go: a stream cut short or corrupt keeps every whole line before the
damage and quarantines the rest as one `truncated_file` record with the codec's message.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import re
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import zstandard

from raising_dagster.config import IngestSettings, sha256_hex
from raising_dagster.schema import QUARANTINE_SCHEMA, RAW_SCHEMA
from raising_dagster.stages.kinds import KINDS, infer_kind
from raising_dagster.stages.normalize import has_surrogates, is_blank, normalize_text, one_line
from raising_dagster.stages.redact import Redactor
from raising_dagster.stages.safety import safety_flag
from raising_dagster.storage import Location, location

JSONL_BASES = (".jsonl", ".ndjson", ".json")
CODECS: dict[str, str] = {
    ".gz": "gzip",
    ".zst": "zstd",
    ".zstd": "zstd",
    ".bz2": "bzip2",
    ".xz": "xz",
}
JSONL_SUFFIXES = tuple(base + codec for base in JSONL_BASES for codec in ("", *CODECS))
SHARD_SUFFIXES = (*JSONL_SUFFIXES, ".parquet", ".txt")
_MAGIC = {
    "gzip": b"\x1f\x8b",
    "zstd": b"\x28\xb5\x2f\xfd",
    "bzip2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_MAX_KEY = 200
_EXCERPT = 300
_CHUNK = 1 << 12


class ShardError(ValueError):
    """A shard that cannot be read at all (unknown format, unreadable file, unsafe name)."""


def is_shard(path: Location) -> bool:
    """Whether a path is named like a shard (a file with a shard suffix, no leading dot)."""
    return (
        path.is_file()
        and path.name.lower().endswith(SHARD_SUFFIXES)
        and not path.name.startswith(".")
    )


def codec_of(name: str) -> str | None:
    """The compression codec a file name says, if any."""
    return next((c for s, c in CODECS.items() if name.lower().endswith(s)), None)


def partition_key(name: str) -> str:
    """A safe Dagster partition key for a shard name, or ShardError saying why there is none."""
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise ShardError(f"shard name {name!r} contains control characters; rename the file")
    key = _UNSAFE.sub("_", name.strip()).strip("_")
    if not key or key.startswith(".") or ".." in key or len(key) > _MAX_KEY:
        raise ShardError(
            f"shard name {name!r} cannot be made a safe partition key (got {key!r}); use letters, "
            f"digits, '.', '_' or '-', no leading dot, no '..', at most {_MAX_KEY} characters"
        )
    return key


@dataclass(frozen=True)
class SkippedFile:
    """An entry of the landing folder that is not read, and why."""

    name: str
    reason: str
    detail: str

    def line(self) -> str:
        return f"skipped {self.name!r}: {self.reason} ({self.detail})"


@dataclass(frozen=True)
class LandingScan:
    """The shards of a landing folder by partition key, and every other entry with a reason."""

    shards: dict[str, Location]
    skipped: list[SkippedFile] = field(default_factory=list)

    def skipped_records(self) -> list[dict[str, str]]:
        return [s.__dict__ for s in self.skipped]


def _unreadable(path: Location) -> str | None:
    """Why a shard file cannot be read at all (checked cheaply: magic bytes, Parquet footer; on
    S3 ranged reads of just those bytes)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            with path.open("rb") as handle:
                pq.read_metadata(handle)
        except Exception as exc:  # pyarrow raises several error types for broken files
            return f"not readable Parquet: {exc}"
        return None
    codec = codec_of(name)
    if codec is not None and path.stat().st_size:
        with path.open("rb") as handle:
            head = handle.read(len(_MAGIC[codec]))
        if head != _MAGIC[codec]:
            return f"named {codec} but does not start with a {codec} header"
    return None


def scan_landing(landing_dir: Location | str) -> LandingScan:
    """Every shard of the landing folder (or S3 prefix: its objects directly under it) by
    partition key; every other entry skipped with a reason (the first of two files that map to
    one key, in name order, is the shard)."""
    landing_dir = location(landing_dir)
    if not landing_dir.is_dir():
        raise ShardError(f"landing folder {landing_dir} does not exist")
    candidates: dict[str, list[Location]] = {}
    skipped: list[SkippedFile] = []
    for path in sorted(landing_dir.iterdir()):
        # a name that is not UTF-8 (surrogate-escaped by Python) is shown with backslashes
        name = path.name.encode("utf-8", "backslashreplace").decode("utf-8")
        if name.startswith("."):
            skipped.append(SkippedFile(name, "hidden_file", "names starting with '.' are ignored"))
        elif not path.is_file():
            skipped.append(SkippedFile(name, "not_a_file", "sub-folders and specials are not read"))
        elif not name.lower().endswith(SHARD_SUFFIXES):
            skipped.append(
                SkippedFile(
                    name,
                    "unsupported_format",
                    f"a shard name ends in one of {', '.join(SHARD_SUFFIXES)}",
                )
            )
        else:
            try:
                candidates.setdefault(partition_key(name), []).append(path)
            except ShardError as exc:
                skipped.append(SkippedFile(name, "unsafe_name", str(exc)))
    shards: dict[str, Location] = {}
    for key, paths in sorted(candidates.items()):
        # the file named exactly like the key wins a collision, else the first by name
        chosen = next((p for p in paths if p.name == key), paths[0])
        skipped += [
            SkippedFile(p.name, "key_collision", f"{chosen.name!r} maps to the same key {key!r}")
            for p in paths
            if p != chosen
        ]
        problem = _unreadable(chosen)
        if problem is not None:
            skipped.append(SkippedFile(chosen.name, "unreadable_file", problem))
        else:
            shards[key] = chosen
    skipped.sort(key=lambda s: s.name)
    return LandingScan(shards, skipped)


def list_shards(landing_dir: Location | str) -> dict[str, Location]:
    """Every shard file in the landing folder by partition key (see `scan_landing`)."""
    return scan_landing(landing_dir).shards


def find_shard(landing_dir: Location | str, key: str) -> Location:
    """The shard file of one partition key, as `scan_landing` chooses it, or ShardError. A file
    named exactly like the key wins every collision, so it is looked at alone (one stat and
    header read, on S3 one HEAD and a ranged GET: a backfill of N shards does not list the
    folder N times); only a key made from an unsafe name needs the listing."""
    landing_dir = location(landing_dir)
    named = landing_dir / key
    if key == partition_key(key) and is_shard(named):
        problem = _unreadable(named)
        if problem is not None:
            raise ShardError(f"shard {key!r} in {landing_dir} is unreadable: {problem}")
        return named
    shards = list_shards(landing_dir)
    if key not in shards:
        raise ShardError(f"partition {key!r} has no shard file in {landing_dir}")
    return shards[key]


@dataclass(frozen=True)
class ShardRead:
    """What one shard yields: documents, quarantined records, the count of records seen, and why
    the file could not be read at all (`file_error`, then no records)."""

    docs: pl.DataFrame
    quarantine: pl.DataFrame
    records_in: int
    content_sha: str
    file_error: str | None = None


def _replace_surrogates(value: Any) -> Any:
    """A JSON value with lone UTF-16 surrogates (valid as JSON escapes) made U+FFFD everywhere."""
    if isinstance(value, str):
        return normalize_text(value)[0] if has_surrogates(value) else value
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


@dataclass
class _Collector:
    shard: str
    settings: IngestSettings
    docs: list[dict[str, Any]] = field(default_factory=list)
    bad: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.redactor = Redactor(self.settings.redact)

    def quarantine(self, line: int, reason: str, detail: str, raw: str) -> None:
        self.bad.append(
            {
                "shard": self.shard,
                "line": line,
                "reason": reason,
                "detail": detail,
                "raw": _excerpt(raw),
            }
        )

    def record(
        self,
        line: int,
        obj: dict[str, Any],
        raw: str,
        changes: tuple[str, ...] = (),
        plain: bool = False,
    ) -> None:
        """Keep a record or quarantine it with a reason; `plain`: the raw JSON line shows that no
        string in it can need normalizing (ASCII, no \\u, \\b, \\f or \\r escape)."""
        text = obj.get("text")
        if "text" not in obj or text is None:
            return self.quarantine(line, "missing_text", "record has no 'text' field", raw)
        if not isinstance(text, str):
            return self.quarantine(line, "wrong_type", f"'text' is {type(text).__name__}", raw)
        for name in ("id", "title", "kind"):
            value = obj.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
                return self.quarantine(
                    line, "wrong_type", f"'{name}' is {type(value).__name__}", raw
                )
        limit = self.settings.max_doc_chars
        if len(text) > limit:
            return self.quarantine(
                line, "too_long", f"'text' has {len(text)} characters, over {limit}", raw
            )
        found = list(changes)
        if self.settings.normalize and not (plain and not self.settings.fix_mojibake):
            text, done = normalize_text(text, self.settings.fix_mojibake)
            found += done
        if is_blank(text):
            return self.quarantine(
                line, "empty_text", "'text' is empty, whitespace or invisible characters", raw
            )
        title = obj.get("title")
        if title is not None:
            title = one_line(
                normalize_text(str(title))[0] if self.settings.normalize else str(title)
            )
        self.docs.append(_doc(self.shard, line, obj, text.strip(), title or None, found))
        return None


def _excerpt(raw: str) -> str:
    raw = raw[:_EXCERPT]
    return normalize_text(raw)[0] if has_surrogates(raw) else raw


def _doc(
    shard: str,
    line: int,
    obj: dict[str, Any],
    text: str,
    title: str | None,
    normalized: list[str],
) -> dict[str, Any]:
    input_sha = sha256_hex(text)
    doc_id = obj.get("id")
    doc_id = str(doc_id) if doc_id not in (None, "") else f"{shard}:{line}:{input_sha[:12]}"
    kind = str(obj.get("kind") or "").lower()
    meta = {k: v for k, v in obj.items() if k not in ("id", "text", "title", "kind")}
    return {
        "doc_id": doc_id,
        "shard": shard,
        "line": line,
        "title": title,
        "kind": kind if kind in KINDS else infer_kind(text, title),
        "text": text,
        "meta": json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str),
        "input_sha": input_sha,
        "normalized": list(dict.fromkeys(normalized)),
        "redactions": [],
    }


def _decompressor(codec: str) -> Any:
    if codec == "gzip":
        return zlib.decompressobj(wbits=31)
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    if codec == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


_CODEC_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


def decompress(codec: str, data: bytes) -> tuple[bytes, str | None]:
    """The decoded bytes of a (possibly concatenated) compressed stream, and why decoding stopped
    early (truncated or corrupt data), else None. Data is fed in 4 KiB chunks so that whatever
    decodes before a fault is kept."""
    out: list[bytes] = []
    rest = memoryview(data)
    while True:
        engine = _decompressor(codec)
        offset = 0
        try:
            while offset < len(rest) and not engine.eof:
                out.append(engine.decompress(rest[offset : offset + _CHUNK]))
                offset += _CHUNK
        except _CODEC_ERRORS as exc:
            return b"".join(out), f"{codec} data corrupt after {sum(map(len, out))} bytes: {exc}"
        if not engine.eof:
            return b"".join(out), (
                f"{codec} stream truncated: it ends early after {sum(map(len, out))} decoded bytes"
            )
        consumed = min(offset, len(rest)) - len(engine.unused_data)
        rest = rest[consumed:]
        if not bytes(rest).strip(b"\x00"):
            return b"".join(out), None
        if not bytes(rest[: len(_MAGIC[codec])]) == _MAGIC[codec]:
            return b"".join(out), f"{len(rest)} bytes after the last {codec} stream are not {codec}"


def _strip_bom(line: str) -> tuple[str, tuple[str, ...]]:
    return (line[1:], ("bom",)) if line.startswith("\ufeff") else (line, ())


def _read_json_array(text: str, out: _Collector) -> int | None:
    """A `.json` file holding one JSON array (or object): its elements are the records."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    items = data if isinstance(data, list) else [data]
    for number, item in enumerate(_replace_surrogates(items), start=1):
        raw = json.dumps(item, ensure_ascii=False, default=str)
        if isinstance(item, dict):
            out.record(number, item, raw)
        else:
            out.quarantine(
                number, "not_an_object", f"JSON {type(item).__name__}, not an object", raw
            )
    return len(items)


def _read_jsonl(data: bytes, out: _Collector, stopped: str | None, array_ok: bool) -> int:
    if array_ok and stopped is None:
        try:
            text, _ = _strip_bom(data.decode("utf-8"))
        except UnicodeDecodeError:
            text = ""
        if text.lstrip()[:1] in ("[", "{"):
            found = _read_json_array(text, out)
            if found is not None:
                return found
    lines = data.split(b"\n")
    tail = lines.pop() if stopped is not None else None  # cut mid-record, or the lost rest
    if lines and tail is None and lines[-1].strip() == b"":
        lines.pop()
    for number, raw_line in enumerate(lines, start=1):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.quarantine(number, "invalid_utf8", str(exc), raw_line.decode("utf-8", "replace"))
            continue
        line, changes = _strip_bom(line)
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
        if "\\u" in line and _SURROGATE_ESCAPE.search(line):
            fixed = _replace_surrogates(obj)
            if fixed != obj:
                obj, changes = fixed, (*changes, "surrogates")
        out.record(number, obj, line, changes, _plain_json(line))
    if tail is not None:
        out.quarantine(
            len(lines) + 1,
            "truncated_file",
            f"{stopped}; records from here on are lost",
            tail.decode("utf-8", "replace"),
        )
        return len(lines) + 1
    return len(lines)


def _plain_json(line: str) -> bool:
    """Whether no string of a JSON line can hold a control or non-ASCII character: in JSON they
    appear raw (non-ASCII) or as escapes (control characters), so an ASCII line without the
    escapes that make them cannot (cheap membership tests, no regular expression)."""
    return line.isascii() and not any(e in line for e in ("\\u", "\\b", "\\f", "\\r"))


def _read_parquet(data: bytes, out: _Collector) -> int:
    frame = pl.read_parquet(io.BytesIO(data))
    for number, row in enumerate(frame.iter_rows(named=True), start=1):
        out.record(number, row, json.dumps(row, default=str, ensure_ascii=False))
    return frame.height


def _read_txt(path: Location, data: bytes, out: _Collector) -> int:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        out.quarantine(1, "invalid_utf8", str(exc), data[:_EXCERPT].decode("utf-8", "replace"))
        return 1
    text, changes = _strip_bom(text)
    title = path.stem.replace("_", " ").replace("-", " ")
    out.record(1, {"text": text, "title": title, "source": path.name}, text, changes)
    return 1


def _redact(docs: pl.DataFrame, redactor: Redactor) -> pl.DataFrame:
    """Redact texts and titles (stages/redact.py): Polars finds the few records a rule could
    change, Python rewrites those; their `input_sha` follows the new text (derived ids stay)."""
    hits = docs.select(
        redactor.may_redact(pl.col("text")) | redactor.may_redact(pl.col("title").fill_null(""))
    ).to_series()
    rows = hits.arg_true()
    if rows.len() == 0:
        return docs
    texts, titles, reasons = [], [], []
    for text, title in docs[rows].select("text", "title").iter_rows():
        text, found = redactor.redact(text)
        if title is not None:
            title, in_title = redactor.redact(title)
            found += in_title
        texts.append(text)
        titles.append(title)
        reasons.append(found)
    updates = pl.DataFrame(
        {
            "_row": rows,
            "text": texts,
            "title": titles,
            "input_sha": [sha256_hex(t) for t in texts],
            "redactions": reasons,
        },
        schema_overrides={"_row": pl.UInt32, "title": pl.String, "redactions": pl.List(pl.String)},
    )
    return (
        docs.with_row_index("_row")
        .update(updates, on="_row", include_nulls=True)
        .drop("_row")
        .select(docs.columns)
    )


def _frames(out: _Collector) -> tuple[pl.DataFrame, pl.DataFrame]:
    docs = pl.DataFrame(
        out.docs, schema={k: v for k, v in RAW_SCHEMA.items() if k != "safety_flag"}
    )
    docs = _redact(docs, out.redactor)
    docs = docs.with_columns(safety_flag=safety_flag(pl.col("text"))).select(list(RAW_SCHEMA))
    duplicated = docs.filter(
        pl.col("doc_id").is_duplicated() & ~pl.col("doc_id").is_first_distinct()
    )
    for row in duplicated.iter_rows(named=True):
        out.quarantine(
            row["line"], "duplicate_id", f"id {row['doc_id']!r} seen earlier in shard", row["text"]
        )
    docs = docs.filter(~pl.col("line").is_in(duplicated["line"].implode()))
    return docs, pl.DataFrame(out.bad, schema=QUARANTINE_SCHEMA).sort("line")


def read_shard(path: Location, settings: IngestSettings | None = None) -> ShardRead:
    """Read a JSON Lines (plain or gzip/zstd/bzip2/xz; `.json` may also hold one array),
    Parquet or .txt shard; bad records go to quarantine with a reason (module doc)."""
    key = partition_key(path.name)
    if not is_shard(path):
        raise ShardError(
            f"{path} is not a shard: expected a file ending in {', '.join(SHARD_SUFFIXES)}"
        )
    out = _Collector(shard=key, settings=settings or IngestSettings())
    data = path.read_bytes()
    content_sha = sha256_hex(data)
    name = path.name.lower()
    readers: dict[str, Callable[[], int]] = {
        ".parquet": lambda: _read_parquet(data, out),
        ".txt": lambda: _read_txt(path, data, out),
    }
    reader = next((r for suffix, r in readers.items() if name.endswith(suffix)), None)
    if reader is None:
        codec = codec_of(name)
        decoded, stopped = decompress(codec, data) if codec else (data, None)
        base = name.removesuffix(next((s for s in CODECS if name.endswith(s)), ""))
        reader = lambda: _read_jsonl(decoded, out, stopped, base.endswith(".json"))  # noqa: E731
    try:
        records_in = reader()
    except Exception as exc:  # a file that cannot be read at all: no record is kept
        if not name.endswith(".parquet"):
            raise
        empty = _Collector(shard=key, settings=out.settings)
        docs, quarantine = _frames(empty)
        return ShardRead(docs, quarantine, 0, content_sha, f"not readable Parquet: {exc}")
    docs, quarantine = _frames(out)
    return ShardRead(
        docs=docs, quarantine=quarantine, records_in=records_in, content_sha=content_sha
    )
