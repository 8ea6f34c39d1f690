"""Where the pipeline's files live: a local folder or an S3 prefix (`s3://bucket/prefix`).

A `Location` is a `pathlib.Path` or an `S3Path`; `S3Path` has the part of Path's interface the
pipeline uses (`/`, `name`, `parent`, `exists`, `iterdir`, `glob`, `read_bytes`, `write_text`,
`replace`, ...), so the stages and assets handle both alike. Parquet is read and written on S3
directly: Polars with `storage_options` (`read_parquet`, `scan_parquet`, `write_parquet` here),
DuckDB through `attach` (a pyarrow S3 filesystem registered with the connection: DuckDB's own
httpfs extension is downloaded from DuckDB's server at run time, which this project cannot rely
on). The boto3 client comes from dagster-aws' `S3Resource`.

Credentials come from the environment only (the standard AWS variables and credential chain:
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, profiles, instance roles);
the endpoint of an S3-compatible store from `storage.s3_endpoint_url` or `AWS_ENDPOINT_URL`, the
region from `AWS_REGION` (or `AWS_DEFAULT_REGION`).

Atomicity: an object appears whole when its upload completes (PUT and multipart uploads alike),
so a single object needs no temporary name on S3; a local file is written to a hidden temporary
name and renamed.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import duckdb
import polars as pl

S3_SCHEME = "s3://"
_DELETE_BATCH = 1000  # S3's limit of keys per DeleteObjects call


@dataclass(frozen=True)
class S3Options:
    """How to reach S3: an endpoint (an S3-compatible store; None: AWS) and a region. Never
    credentials: boto3, pyarrow and Polars take those from the environment."""

    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, endpoint_url: str | None = None) -> S3Options:
        """The endpoint given, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; the region from
        AWS_REGION / AWS_DEFAULT_REGION."""
        endpoint = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
        return cls(endpoint_url=endpoint, region=region)

    def resource(self) -> Any:
        """dagster-aws' S3Resource for these options (credentials from the environment)."""
        from dagster_aws.s3 import S3Resource

        return S3Resource(endpoint_url=self.endpoint_url, region_name=self.region)

    def client(self) -> Any:
        """A boto3 S3 client from `resource()`, one per options (a client is thread-safe, its
        creation is not: hence the lock)."""
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(self)
            if client is None:
                client = _CLIENTS[self] = self.resource().get_client()
        return client

    def polars_options(self) -> dict[str, str]:
        """Polars' `storage_options` (object_store keys); credentials are read from the env."""
        options: dict[str, str] = {}
        if self.endpoint_url:
            options["aws_endpoint_url"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["aws_allow_http"] = "true"
        if self.region:
            options["aws_region"] = self.region
        return options

    def arrow_filesystem(self) -> Any:
        """A pyarrow S3 filesystem (credentials from the AWS default chain)."""
        import pyarrow.fs as pafs

        kwargs: dict[str, Any] = {"region": self.region} if self.region else {}
        if self.endpoint_url:
            scheme, _, rest = self.endpoint_url.partition("://")
            kwargs["endpoint_override"] = rest.rstrip("/") if rest else self.endpoint_url
            kwargs["scheme"] = scheme if rest else "https"
        return pafs.S3FileSystem(**kwargs)


_CLIENTS: dict[S3Options, Any] = {}
_CLIENTS_LOCK = threading.Lock()


class S3Stat(NamedTuple):
    """What `S3Path.stat()` knows of an object: size, modification time and ETag."""

    st_size: int
    st_mtime_ns: int
    etag: str


def _missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


class S3Path:
    """An object or a prefix ("folder") in an S3 bucket, with the subset of `pathlib.Path` the
    pipeline uses. Keys are joined with "/"; a prefix has no object of its own."""

    __slots__ = ("_client", "_info", "bucket", "key", "options")

    def __init__(
        self,
        bucket: str,
        key: str = "",
        options: S3Options | None = None,
        info: dict[str, Any] | None = None,
        client: Any = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"not an S3 bucket name: {bucket!r}")
        self.bucket = bucket
        self.key = key.strip("/")
        self.options = options or S3Options.from_env()
        self._info = info  # from a listing: {"size", "etag", "mtime_ns"} or {"dir": True}
        self._client = client  # a given boto3 client (a Dagster S3Resource's), else options'

    @classmethod
    def from_uri(cls, uri: str, options: S3Options | None = None) -> S3Path:
        if not uri.startswith(S3_SCHEME):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
        return cls(bucket, key, options)

    def using(self, client: Any) -> S3Path:
        """The same location, reached through `client` (and so its children)."""
        return S3Path(self.bucket, self.key, self.options, self._info, client)

    def _child(self, key: str, info: dict[str, Any] | None = None) -> S3Path:
        return S3Path(self.bucket, key, self.options, info, self._client)

    # -- names -----------------------------------------------------------------------------
    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}" if self.key else f"{S3_SCHEME}{self.bucket}"

    def __repr__(self) -> str:
        return f"S3Path({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Path) and (self.bucket, self.key) == (other.bucket, other.key)

    def __hash__(self) -> int:
        return hash((self.bucket, self.key))

    def __lt__(self, other: S3Path) -> bool:
        return str(self) < str(other)

    def __truediv__(self, part: str | os.PathLike[str]) -> S3Path:
        joined = str(PurePosixPath(self.key or ".") / str(part))
        return self._child(joined.removeprefix("./"))

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.key).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    @property
    def parent(self) -> S3Path:
        parent = str(PurePosixPath(self.key).parent)
        return self._child("" if parent == "." else parent)

    def with_name(self, name: str) -> S3Path:
        return self.parent / name

    def with_suffix(self, suffix: str) -> S3Path:
        return self._child(str(PurePosixPath(self.key).with_suffix(suffix)))

    def relative_to(self, other: S3Path) -> PurePosixPath:
        return PurePosixPath(self.key).relative_to(other.key)

    def resolve(self) -> S3Path:
        return self

    def is_symlink(self) -> bool:
        return False

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else self.options.client()

    # -- queries ---------------------------------------------------------------------------
    def _head(self) -> dict[str, Any] | None:
        if self._info is not None:
            return None if self._info.get("dir") else self._info
        if not self.key:
            return None
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        return {
            "size": int(head["ContentLength"]),
            "etag": head["ETag"].strip('"'),
            "mtime_ns": int(head["LastModified"].timestamp() * 1e9),
        }

    def is_file(self) -> bool:
        return self._head() is not None

    def is_dir(self) -> bool:
        if self._info is not None:
            return bool(self._info.get("dir"))
        prefix = f"{self.key}/" if self.key else ""
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        return listed.get("KeyCount", 0) > 0

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def stat(self) -> S3Stat:
        head = self._head()
        if head is None:
            raise FileNotFoundError(str(self))
        return S3Stat(head["size"], head["mtime_ns"], head["etag"])

    @property
    def etag(self) -> str:
        return self.stat().etag

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        kwargs = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        yield from paginator.paginate(**kwargs)

    def _object(self, entry: dict[str, Any]) -> S3Path:
        info = {
            "size": int(entry["Size"]),
            "etag": entry["ETag"].strip('"'),
            "mtime_ns": int(entry["LastModified"].timestamp() * 1e9),
        }
        return self._child(entry["Key"], info)

    def iterdir(self) -> Iterator[S3Path]:
        """The objects and sub-prefixes directly under this prefix (one listing, paginated; each
        child carries its size and ETag from the listing)."""
        prefix = f"{self.key}/" if self.key else ""
        for page in self._pages(prefix, "/"):
            for entry in page.get("Contents", []):
                if entry["Key"] != prefix:  # a "folder marker" object
                    yield self._object(entry)
            for common in page.get("CommonPrefixes", []):
                yield self._child(common["Prefix"], {"dir": True})

    def walk_files(self) -> Iterator[S3Path]:
        """Every object under this prefix, at any depth."""
        prefix = f"{self.key}/" if self.key else ""
        for page in self._pages(prefix, None):
            for entry in page.get("Contents", []):
                yield self._object(entry)

    def glob(self, pattern: str) -> Iterator[S3Path]:
        """Objects (and prefixes) matching a relative pattern segment by segment, as Path.glob
        does (`*` never crosses a `/`)."""
        parts = pattern.split("/")
        seen: set[str] = set()
        for item in self.walk_files():
            relative = item.relative_to(self).parts
            if len(relative) >= len(parts) and all(
                fnmatch.fnmatchcase(name, part) for name, part in zip(relative, parts, strict=False)
            ):
                match = "/".join(relative[: len(parts)])
                if match not in seen:
                    seen.add(match)
                    yield item if len(relative) == len(parts) else self / match

    # -- reading and writing ---------------------------------------------------------------
    def read_bytes(self) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(str(self)) from exc
            raise

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def open(self, mode: str = "rb") -> Any:
        """A seekable reader (pyarrow; ranged GETs): `pq.read_metadata` and magic-byte checks read
        only the bytes they need."""
        if mode != "rb":
            raise ValueError("S3Path.open supports 'rb' only; write with write_bytes")
        return self.options.arrow_filesystem().open_input_file(f"{self.bucket}/{self.key}")

    def upload(self, local: Path) -> None:
        """Upload a local file to this key (boto3's managed, multipart transfer)."""
        self.client.upload_file(str(local), self.bucket, self.key)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: S3 has no folders."""

    def unlink(self, missing_ok: bool = False) -> None:
        if not missing_ok and not self.is_file():
            raise FileNotFoundError(str(self))
        self.client.delete_object(Bucket=self.bucket, Key=self.key)

    def replace(self, target: S3Path) -> S3Path:
        """Copy to `target`, then delete this object. Readers of `target` see the old object or
        the new one whole (the copy is one write), never a mixture."""
        self.client.copy({"Bucket": self.bucket, "Key": self.key}, target.bucket, target.key)
        self.client.delete_object(Bucket=self.bucket, Key=self.key)
        return target

    def remove_tree(self) -> int:
        """Delete every object under this prefix; returns how many."""
        keys = [{"Key": item.key} for item in self.walk_files()]
        for start in range(0, len(keys), _DELETE_BATCH):
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys[start : start + _DELETE_BATCH]}
            )
        return len(keys)


Location = Path | S3Path


def is_s3(value: object) -> bool:
    """Whether a location or its text names S3."""
    return isinstance(value, S3Path) or (isinstance(value, str) and value.startswith(S3_SCHEME))


def location(value: str | os.PathLike[str] | S3Path, options: S3Options | None = None) -> Location:
    """A `Path` for a local path, an `S3Path` for an `s3://bucket/prefix` URI (endpoint and
    region from `options`, else the environment)."""
    if isinstance(value, S3Path):
        if options is None:
            return value
        return S3Path(value.bucket, value.key, options, value._info, value._client)
    if isinstance(value, str) and value.startswith(S3_SCHEME):
        return S3Path.from_uri(value, options)
    if isinstance(value, str) and "://" in value:
        raise ValueError(
            f"unsupported storage URI {value!r}: use a local path or s3://bucket/prefix"
        )
    return Path(value)


def source(target: Location | Sequence[Location]) -> tuple[Any, dict[str, str] | None]:
    """What Polars reads: the path(s) as text and the storage options S3 needs (None locally)."""
    targets = [target] if isinstance(target, Path | S3Path) else list(target)
    remote = [t for t in targets if isinstance(t, S3Path)]
    options = remote[0].options.polars_options() if remote else None
    texts = [str(t) for t in targets]
    return (texts[0] if isinstance(target, Path | S3Path) else texts), options


def read_parquet(target: Location, columns: list[str] | None = None) -> pl.DataFrame:
    """A Parquet file (or glob) into a frame, local or on S3."""
    path, options = source(target)
    return pl.read_parquet(path, columns=columns, storage_options=options)


def scan_parquet(target: Location | Sequence[Location]) -> pl.LazyFrame:
    """A lazy scan of Parquet files (or a glob), local or on S3."""
    path, options = source(target)
    return pl.scan_parquet(path, storage_options=options)


def write_parquet(frame: pl.DataFrame, path: Location) -> None:
    """Write a Parquet file atomically (a reader never sees half a file): locally a hidden
    temporary file renamed over the target; on S3 one upload, visible when complete."""
    if isinstance(path, S3Path):
        frame.write_parquet(
            str(path),
            compression="zstd",
            statistics=True,
            storage_options=path.options.polars_options(),
        )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    frame.write_parquet(tmp, compression="zstd", statistics=True)
    os.replace(tmp, path)


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def write_json(data: Any, path: Location) -> None:
    """Write JSON atomically (as `write_parquet`)."""
    write_text(dump_json(data), path)


def write_text(text: str, path: Location) -> None:
    """Write a text file atomically (as `write_parquet`)."""
    if isinstance(path, S3Path):
        path.write_text(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Location) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def remove_tree(path: Location) -> None:
    """Remove a folder (or prefix) and everything under it; nothing there is fine."""
    if isinstance(path, S3Path):
        path.remove_tree()
    else:
        shutil.rmtree(path, ignore_errors=True)


def tree_size(path: Location) -> int:
    """Bytes of every file under a folder or prefix."""
    if isinstance(path, S3Path):
        return sum(item.stat().st_size for item in path.walk_files())
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def upload_tree(local: Path, target: S3Path, last: Sequence[str] = ()) -> list[str]:
    """Upload every file under a local folder to a prefix, those named in `last` (relative
    paths) after all the others, so their presence says the rest is there. Returns the keys."""
    from concurrent.futures import ThreadPoolExecutor

    files = sorted(f for f in local.rglob("*") if f.is_file())
    relative = [f.relative_to(local).as_posix() for f in files]
    first = [(f, r) for f, r in zip(files, relative, strict=True) if r not in last]
    final = [(local / r, r) for r in last if (local / r).is_file()]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: (target / item[1]).upload(item[0]), first))
    for file, name in final:
        (target / name).upload(file)
    return [(target / r).key for r in relative]


def _arrow_fsspec(options: S3Options) -> Any:
    """An fsspec filesystem for the `s3` protocol over pyarrow's S3 filesystem, which DuckDB
    can use for `read_parquet('s3://...')`, globs and `COPY ... TO 's3://...'`."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    class ArrowS3(ArrowFSWrapper):  # type: ignore[misc]
        protocol = ("s3", "s3a")
        root_marker = ""

    return ArrowS3(options.arrow_filesystem())


def attach(con: duckdb.DuckDBPyConnection, *locations: Location | None) -> None:
    """Let a DuckDB connection read and write the S3 locations among `locations` (nothing to do
    for local ones): registers a pyarrow-backed `s3` filesystem with the connection."""
    remote = [loc for loc in locations if isinstance(loc, S3Path)]
    if not remote:
        return
    con.register_filesystem(_arrow_fsspec(remote[0].options))
