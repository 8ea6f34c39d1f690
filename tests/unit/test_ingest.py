"""Reading raw shards: formats, ids, quarantine with reasons, conservation, partition keys."""

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
import zstandard

from raising_dagster.stages.ingest import (
    ShardError,
    list_shards,
    partition_key,
    read_shard,
    scan_landing,
)
from tests.conftest import write_jsonl


def test_bad_records_are_quarantined_with_line_and_reason(make_shard) -> None:
    path = make_shard(
        "mixed.jsonl",
        [
            {"id": "a", "text": "A good document about honesty."},
            "{not json",
            {"id": "b", "text": "   "},
            {"id": "c"},
            {"id": "d", "text": 42},
            ["a", "list"],
            {"id": "a", "text": "A second record with a repeated id."},
            {"text": "Kept, with a derived id.", "title": "T", "source": "web", "lang": "en"},
            {"id": "e", "text": "bad title type", "title": {"x": 1}},
        ],
    )
    read = read_shard(path)
    reasons = dict(zip(read.quarantine["line"], read.quarantine["reason"], strict=True))
    assert reasons == {
        2: "invalid_json",
        3: "empty_text",
        4: "missing_text",
        5: "wrong_type",
        6: "not_an_object",
        7: "duplicate_id",
        9: "wrong_type",
    }
    assert read.records_in == 9
    assert read.records_in == read.docs.height + read.quarantine.height
    assert read.quarantine["shard"].unique().to_list() == ["mixed.jsonl"]
    kept = read.docs.filter(pl.col("line") == 8).row(0, named=True)
    assert kept["doc_id"].startswith("mixed.jsonl:8:")
    assert json.loads(kept["meta"]) == {"source": "web", "lang": "en"}


def test_invalid_utf8_line_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    read = read_shard(path)
    assert read.docs["text"].to_list() == ["fine"]
    assert read.quarantine["reason"].to_list() == ["invalid_utf8"]
    assert read.quarantine["line"].to_list() == [2]


def test_derived_ids_are_stable_across_reads(make_shard) -> None:
    path = make_shard("s.jsonl", [{"text": "one"}, {"text": "two"}])
    assert read_shard(path).docs["doc_id"].to_list() == read_shard(path).docs["doc_id"].to_list()


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz", "jsonl.zst", "parquet"])
def test_every_format_reads_the_same_documents(tmp_path: Path, docs, suffix: str) -> None:
    plain = write_jsonl(tmp_path / "plain.jsonl", docs).read_bytes()
    path = tmp_path / f"shard.{suffix}"
    if suffix == "jsonl":
        path.write_bytes(plain)
    elif suffix == "jsonl.gz":
        path.write_bytes(gzip.compress(plain))
    elif suffix == "jsonl.zst":
        path.write_bytes(zstandard.ZstdCompressor().compress(plain))
    else:
        pl.DataFrame(docs).write_parquet(path)
    read = read_shard(path)
    assert read.docs["doc_id"].to_list() == [d["id"] for d in docs]
    assert read.docs["text"].to_list() == [d["text"] for d in docs]
    assert read.docs["kind"].to_list() == ["fable", "definition", "dilemma"]
    assert read.quarantine.height == 0


def test_parquet_null_text_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame({"id": ["x", "y"], "text": ["ok text", None]}).write_parquet(path)
    read = read_shard(path)
    assert read.docs["doc_id"].to_list() == ["x"]
    assert read.quarantine.select("line", "reason").rows() == [(2, "missing_text")]


def test_txt_shard_is_one_document_titled_by_file(tmp_path: Path) -> None:
    path = tmp_path / "on_promises.txt"
    path.write_text("Keeping a promise is a kind of honesty.\nIt takes effort.\n", encoding="utf-8")
    read = read_shard(path)
    assert read.records_in == 1
    assert read.docs["title"].to_list() == ["on promises"]
    assert read.docs["text"][0].startswith("Keeping a promise")


def test_corrupt_compressed_shard_is_skipped_clearly(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(b"definitely not gzip")
    (skipped,) = scan_landing(tmp_path).skipped
    assert (skipped.name, skipped.reason) == ("broken.jsonl.gz", "unreadable_file")
    assert "gzip header" in skipped.detail
    read = read_shard(path)  # read anyway: one record, quarantined with the codec's message
    assert read.quarantine.select("line", "reason").rows() == [(1, "truncated_file")]
    assert read.records_in == 1


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("shard-001.jsonl", "shard-001.jsonl"),
        ("my shard (1).jsonl.gz", "my_shard_1_.jsonl.gz"),
        ("día.parquet", "d_a.parquet"),
    ],
)
def test_partition_keys_are_sanitized(name: str, key: str) -> None:
    assert partition_key(name) == key


@pytest.mark.parametrize("name", ["..", ".hidden.jsonl", "a..b.jsonl", "bad\x07name.jsonl", "***"])
def test_unsafe_names_are_refused_with_a_reason(name: str) -> None:
    with pytest.raises(ShardError, match="shard name"):
        partition_key(name)


def test_two_files_on_one_key_keep_one_and_skip_the_other(tmp_path: Path) -> None:
    (tmp_path / "a b.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "a_b.jsonl").write_text('{"text": "y"}\n')
    scan = scan_landing(tmp_path)
    assert scan.shards == {"a_b.jsonl": tmp_path / "a_b.jsonl"}
    assert [(s.name, s.reason) for s in scan.skipped] == [("a b.jsonl", "key_collision")]


def test_list_shards_skips_other_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "notes.md").write_text("not a shard")
    (tmp_path / ".partial.jsonl").write_text("being uploaded")
    assert list(list_shards(tmp_path)) == ["a.jsonl"]
