"""The storage layer against a real S3-compatible server: S3Path behaves as the Path subset the
pipeline uses, Polars and DuckDB read and write Parquet on S3 directly, settings keep s3:// URIs
and never put SQLite on S3."""

from pathlib import Path

import duckdb
import polars as pl
import pytest

from raising_dagster.config import load_settings
from raising_dagster.stages.ingest import scan_landing
from raising_dagster.stages.order import connect, run_sql, sql_literal
from raising_dagster.storage import (
    S3Options,
    S3Path,
    location,
    read_parquet,
    scan_parquet,
    write_json,
    write_parquet,
)
from tests.s3.conftest import keys

pytestmark = pytest.mark.s3


def test_s3_path_names_listing_and_writes(bucket: S3Path) -> None:
    root = bucket / "store"
    assert str(root / "raw_docs" / "a.parquet") == f"s3://{bucket.bucket}/store/raw_docs/a.parquet"
    assert (root / "x" / "a.stats.json").with_suffix(".txt").name == "a.stats.txt"
    assert not root.exists()
    write_json({"n": 1}, root / "sub" / "one.json")
    (root / "two.txt").write_text("hello")
    (root / ".hidden.tmp").write_text("x")
    assert root.is_dir() and (root / "sub").is_dir() and not (root / "sub").is_file()
    assert (root / "two.txt").read_text() == "hello"
    children = {p.name: p.is_dir() for p in root.iterdir()}
    assert children == {"sub": True, "two.txt": False, ".hidden.tmp": False}
    # * never crosses a "/", as with Path.glob
    assert [p.name for p in root.glob("*.txt")] == ["two.txt"]
    assert [p.name for p in root.glob("*/*.json")] == ["one.json"]
    assert [p.name for p in root.glob(".*.tmp")] == [".hidden.tmp"]
    (root / "two.txt").replace(root / "three.txt")
    assert not (root / "two.txt").exists() and (root / "three.txt").read_text() == "hello"
    with pytest.raises(FileNotFoundError):
        (root / "missing.json").read_text()
    assert (root / "three.txt").stat().st_size == 5
    assert (root / "three.txt").etag  # from a HEAD: the key and content id the sensor keeps
    (root / "sub").remove_tree()
    assert keys(root) == [".hidden.tmp", "three.txt"]


def test_polars_and_duckdb_read_and_write_parquet_on_s3(bucket: S3Path, tmp_path: Path) -> None:
    frame = pl.DataFrame({"shard": ["a", "a", "b"], "n": [1, 2, 3]})
    write_parquet(frame.filter(pl.col("shard") == "a"), bucket / "stage" / "a.parquet")
    write_parquet(frame.filter(pl.col("shard") == "b"), bucket / "stage" / "b.parquet")
    assert read_parquet(bucket / "stage" / "a.parquet")["n"].to_list() == [1, 2]
    assert scan_parquet(bucket / "stage" / "*.parquet").collect().height == 3
    con = connect(temp_dir=tmp_path / "spill", store=bucket)
    try:
        glob = sql_literal(bucket / "stage" / "*.parquet")
        assert run_sql(con, f"SELECT sum(n) FROM read_parquet({glob})") == [(6,)]
        out = bucket / "ordered" / "out.parquet"
        run_sql(
            con,
            f"COPY (SELECT * FROM read_parquet({glob}) ORDER BY n DESC) TO {sql_literal(out)} "
            "(FORMAT parquet)",
        )
    finally:
        con.close()
    assert read_parquet(out)["n"].to_list() == [3, 2, 1]
    assert not list(tmp_path.rglob("*.parquet"))  # nothing went through the local disk
    # a connection without the store attached cannot reach it (the attach is what works)
    bare = duckdb.connect()
    with pytest.raises(duckdb.Error):
        run_sql(bare, f"SELECT * FROM read_parquet({sql_literal(out)})")


def test_settings_keep_s3_uris_and_keep_sqlite_local(s3_env: str, tmp_path: Path) -> None:
    settings = load_settings(store_dir="s3://corpus/store", landing_dir="s3://corpus/landing")
    assert isinstance(settings.store_dir, S3Path) and str(settings.store_dir) == "s3://corpus/store"
    assert settings.store_dir.options.endpoint_url == s3_env  # AWS_ENDPOINT_URL is enough
    assert settings.model_dump(mode="json")["landing_dir"] == "s3://corpus/landing"
    # the generation cache (SQLite) stays on the local disk
    assert settings.teacher_cache_dir == Path("data/work/teacher_cache")
    with pytest.raises(ValueError, match="SQLite, which needs a local file system"):
        load_settings(store_dir="s3://corpus/store", teacher={"cache_dir": "s3://corpus/cache"})
    # an endpoint in the settings wins over the environment's
    other = load_settings(
        store_dir="s3://corpus/store", storage={"s3_endpoint_url": "http://127.0.0.1:1"}
    )
    assert other.store_dir.options == S3Options("http://127.0.0.1:1", "us-east-1")
    assert load_settings(store_dir=tmp_path).store_dir == tmp_path  # local stays a Path
    with pytest.raises(ValueError, match="unsupported storage URI"):
        location("gs://bucket/x")


def test_landing_prefix_scanned_like_a_folder(bucket: S3Path) -> None:
    landing = bucket / "landing"
    (landing / "good.jsonl").write_text('{"text": "fine"}\n')
    (landing / "broken.parquet").write_bytes(b"PAR1 not really")
    (landing / "fake.jsonl.gz").write_text("not gzip")
    (landing / ".hidden.jsonl").write_text("{}\n")
    (landing / "notes.md").write_text("# notes\n")
    (landing / "nested" / "deeper.jsonl").write_text('{"text": "below"}\n')
    scan = scan_landing(landing)
    assert list(scan.shards) == ["good.jsonl"]
    assert {s.name: s.reason for s in scan.skipped} == {
        ".hidden.jsonl": "hidden_file",
        "broken.parquet": "unreadable_file",
        "fake.jsonl.gz": "unreadable_file",
        "nested": "not_a_file",
        "notes.md": "unsupported_format",
    }
    with pytest.raises(ValueError, match="does not exist"):
        scan_landing(bucket / "nowhere")
