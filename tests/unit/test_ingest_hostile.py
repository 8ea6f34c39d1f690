"""Hostile raw input at ingest: every record is kept or quarantined with a reason, every file is
read or skipped with a reason, and the counts add up (issue 9)."""

import bz2
import gzip
import json
import lzma
from pathlib import Path

import polars as pl
import pytest
import zstandard

from raising_dagster import config
from raising_dagster.stages import ingest
from raising_dagster.stages.ingest import list_shards, read_shard
from tests.conftest import FABLE

CODECS = {
    "gz": gzip.compress,
    "zst": lambda data: zstandard.ZstdCompressor().compress(data),
    "bz2": lambda data: bz2.compress(data, compresslevel=1),
    "xz": lzma.compress,
}


def _jsonl(n: int) -> bytes:
    return b"".join(
        json.dumps({"id": f"d{i}", "text": f"Record number {i}. {FABLE}"}).encode() + b"\n"
        for i in range(n)
    )


def _conserved(read) -> None:
    assert read.records_in == read.docs.height + read.quarantine.height


# item 8: a truncated compressed shard keeps what decodes and quarantines the rest, every codec
@pytest.mark.parametrize("codec", sorted(CODECS))
def test_truncated_compressed_shard_keeps_the_decoded_records_and_says_so(
    tmp_path: Path, codec: str
) -> None:
    whole = CODECS[codec](_jsonl(2000))
    path = tmp_path / f"cut.jsonl.{codec}"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    read = read_shard(path)
    _conserved(read)
    reasons = read.quarantine["reason"].to_list()
    assert reasons == ["truncated_file"], reasons
    assert (
        "truncated" in read.quarantine["detail"][0] or "ends early" in read.quarantine["detail"][0]
    )
    assert 0 < read.docs.height < 2000
    # what was kept is a clean prefix of the shard
    assert read.docs["doc_id"].to_list() == [f"d{i}" for i in range(read.docs.height)]


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_whole_compressed_shard_in_every_codec_and_concatenated_streams(
    tmp_path: Path, codec: str
) -> None:
    path = tmp_path / f"ok.jsonl.{codec}"
    first, rest = _jsonl(3), _jsonl(5)[len(_jsonl(3)) :]
    path.write_bytes(CODECS[codec](first) + CODECS[codec](rest))
    read = read_shard(path)
    assert read.quarantine.height == 0
    assert read.docs["doc_id"].to_list() == ["d0", "d1", "d2", "d3", "d4"]


def test_corrupt_bytes_inside_a_gzip_stream_keep_the_prefix(tmp_path: Path) -> None:
    whole = bytearray(gzip.compress(_jsonl(3000), compresslevel=1))
    middle = len(whole) // 2
    whole[middle : middle + 64] = b"\xff" * 64
    path = tmp_path / "corrupt.jsonl.gz"
    path.write_bytes(bytes(whole))
    read = read_shard(path)
    _conserved(read)
    assert read.quarantine["reason"].to_list()[-1] in {"truncated_file", "corrupt_file"}
    assert read.docs.height > 0


# Dolma-style names (issue 10, item 10) and item 17: .json files are read, not skipped silently
@pytest.mark.parametrize(
    "name", ["dolma-0000.json.gz", "a.jsonl.bz2", "b.jsonl.xz", "c.json", "d.ndjson.zst"]
)
def test_dolma_and_json_suffixes_are_shards(tmp_path: Path, name: str) -> None:
    data = _jsonl(4)
    codec = name.rsplit(".", 1)[-1]
    (tmp_path / name).write_bytes(CODECS[codec](data) if codec in CODECS else data)
    assert list(list_shards(tmp_path)) == [name]
    read = read_shard(tmp_path / name)
    assert read.docs.height == 4 and read.quarantine.height == 0


def test_json_array_file_is_read_record_by_record(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_text(
        json.dumps([{"id": "x", "text": FABLE}, {"id": "y"}, 3], indent=2), encoding="utf-8"
    )
    read = read_shard(path)
    assert read.docs["doc_id"].to_list() == ["x"]
    assert read.quarantine.select("line", "reason").rows() == [
        (2, "missing_text"),
        (3, "not_an_object"),
    ]
    _conserved(read)


# item 11 (and 17): one odd file never refuses the folder; each skipped file has a reason
def test_odd_files_are_skipped_with_a_reason_and_the_rest_is_read(tmp_path: Path) -> None:
    (tmp_path / "good.jsonl").write_bytes(_jsonl(2))
    (tmp_path / "bad\x07name.jsonl").write_bytes(_jsonl(1))
    (tmp_path / "a b.jsonl").write_bytes(_jsonl(1))
    (tmp_path / "a_b.jsonl").write_bytes(_jsonl(1))
    (tmp_path / "notes.csv").write_text("id,text\n1,x\n")
    (tmp_path / ".partial.jsonl").write_bytes(_jsonl(1))
    (tmp_path / "truncated.parquet").write_bytes(b"PAR1\x00\x01")
    (tmp_path / "fake.jsonl.gz").write_bytes(b"this is not gzip at all")
    (tmp_path / "sub").mkdir()
    scan = ingest.scan_landing(tmp_path)
    assert list(scan.shards) == ["a_b.jsonl", "good.jsonl"]
    skipped = {s.name: s.reason for s in scan.skipped}
    assert skipped == {
        ".partial.jsonl": "hidden_file",
        "a b.jsonl": "key_collision",
        "bad\x07name.jsonl": "unsafe_name",
        "fake.jsonl.gz": "unreadable_file",
        "notes.csv": "unsupported_format",
        "sub": "not_a_file",
        "truncated.parquet": "unreadable_file",
    }
    assert all(s.detail for s in scan.skipped)


def test_a_partition_finds_the_shard_the_scan_chose_listing_only_for_made_up_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "good.jsonl").write_bytes(_jsonl(2))
    (tmp_path / "a b.jsonl").write_bytes(_jsonl(1))
    (tmp_path / "a_b.jsonl").write_bytes(_jsonl(1))
    (tmp_path / "c d.jsonl").write_bytes(_jsonl(1))  # its key, c_d.jsonl, names no file
    (tmp_path / "truncated.parquet").write_bytes(b"PAR1\x00\x01")
    scan = ingest.scan_landing(tmp_path)
    assert list(scan.shards) == ["a_b.jsonl", "c_d.jsonl", "good.jsonl"]
    for key, path in scan.shards.items():
        assert ingest.find_shard(tmp_path, key) == path
    with pytest.raises(ingest.ShardError, match="unreadable: not readable Parquet"):
        ingest.find_shard(tmp_path, "truncated.parquet")
    with pytest.raises(ingest.ShardError, match="has no shard file"):
        ingest.find_shard(tmp_path, "gone.jsonl")

    def no_listing(landing_dir: object) -> None:
        raise AssertionError("the landing folder was listed")

    monkeypatch.setattr(ingest, "scan_landing", no_listing)
    assert ingest.find_shard(tmp_path, "good.jsonl") == tmp_path / "good.jsonl"
    assert ingest.find_shard(tmp_path, "a_b.jsonl") == tmp_path / "a_b.jsonl"


# item 12
def test_utf8_bom_is_stripped_not_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _jsonl(2))
    read = read_shard(path)
    assert read.quarantine.height == 0 and read.docs.height == 2


def test_bom_text_file_reads(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + FABLE.encode())
    read = read_shard(path)
    assert read.docs["text"][0] == FABLE


def test_lone_surrogates_anywhere_do_not_crash_ingest(tmp_path: Path) -> None:
    path = tmp_path / "surrogate.jsonl"
    path.write_text(
        '{"id": "s\\ud800", "title": "T\\udfff", "text": "Broken \\ud800 here. Fine.", '
        '"extra": "\\udc00"}\n'
        '{"id": "pair", "text": "An emoji \\ud83d\\ude00 pair."}\n',
        encoding="utf-8",
    )
    read = read_shard(path)
    assert read.docs.height == 2
    first = read.docs.row(0, named=True)
    assert first["text"] == "Broken \ufffd here. Fine."
    assert "surrogates" in first["normalized"]
    assert read.docs["text"][1] == "An emoji \U0001f600 pair."


@pytest.mark.parametrize("text", ["\u200b\u200b", "\u00a0 \u200d\ufeff", "\u2060\u202f\n\t"])
def test_invisible_only_text_is_empty(make_shard, text: str) -> None:
    read = read_shard(make_shard("inv.jsonl", [{"id": "z", "text": text}]))
    assert read.quarantine["reason"].to_list() == ["empty_text"]


def test_titles_are_one_line(make_shard) -> None:
    read = read_shard(
        make_shard(
            "t.jsonl", [{"id": "t", "title": "Line one\nLine two\r\n\tthree ", "text": FABLE}]
        )
    )
    assert read.docs["title"].to_list() == ["Line one Line two three"]


def test_truncated_parquet_is_a_file_level_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame({"id": [str(i) for i in range(500)], "text": [FABLE] * 500}).write_parquet(path)
    path.write_bytes(path.read_bytes()[:-100])
    read = read_shard(path)
    assert read.file_error and "Parquet" in read.file_error
    assert (read.records_in, read.docs.height, read.quarantine.height) == (0, 0, 0)


# item 2: a document over the configured maximum is quarantined, not a failed shard
def test_too_long_documents_are_quarantined(make_shard) -> None:
    path = make_shard(
        "long.jsonl", [{"id": "big", "text": "word " * 30}, {"id": "ok", "text": "Short and fine."}]
    )
    read = read_shard(path, config.IngestSettings(max_doc_chars=100))
    assert read.quarantine.select("line", "reason").rows() == [(1, "too_long")]
    assert read.docs["doc_id"].to_list() == ["ok"]


# item 14: normalization, and what it changed per record
def test_controls_escapes_bidi_and_noncharacters_are_normalized_and_recorded(make_shard) -> None:
    path = make_shard(
        "n.jsonl",
        [
            {"id": "ansi", "text": "\x1b[31mRed\x1b[0m alert\x07 here."},
            {"id": "bidi", "text": "Access \u202eevil\u202c granted\ufdd0 now\uffff."},
            {"id": "mojibake", "text": "The caf\u00c3\u00a9 was open."},
            {"id": "crlf", "text": "One.\r\nTwo."},
            {"id": "clean", "text": FABLE},
        ],
    )
    docs = {r["doc_id"]: r for r in read_shard(path).docs.iter_rows(named=True)}
    fixed = read_shard(path, config.IngestSettings(fix_mojibake=True)).docs
    assert docs["ansi"]["text"] == "Red alert here."
    assert {"ansi_escapes", "control_chars"} <= set(docs["ansi"]["normalized"])
    assert docs["bidi"]["text"] == "Access evil granted now."
    assert {"bidi_controls", "noncharacters"} <= set(docs["bidi"]["normalized"])
    assert docs["mojibake"]["text"] == "The caf\u00c3\u00a9 was open."  # repair is opt-in
    mojibake = fixed.filter(pl.col("doc_id") == "mojibake").row(0, named=True)
    assert mojibake["text"] == "The caf\u00e9 was open."
    assert "mojibake" in mojibake["normalized"]
    assert docs["crlf"]["text"] == "One.\nTwo."
    assert docs["clean"]["normalized"] == []
