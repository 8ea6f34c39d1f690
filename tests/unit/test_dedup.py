"""Duplicates across shards: the first copy stays, every later one leaves with its reason and the
kept one named; near duplicates only when asked for."""

from pathlib import Path

import polars as pl
import pytest

from raising_dagster.config import DedupSettings
from raising_dagster.expectations.curriculum import kept_reach_curriculum
from raising_dagster.stages.dedup import find_duplicates
from raising_dagster.stages.ingest import read_shard
from raising_dagster.stages.order import connect
from tests.unit.test_order import _order, _write_shard

ARTICLE = (
    "The river town held its spring market on the first Saturday of April. Farmers brought "
    "early greens and eggs, weavers hung bright blankets between the stalls, and children ran "
    "between the carts with paper kites. By noon the square was full, and the old bell in the "
    "tower rang twice to mark the middle of the day, as it had for two hundred years."
)
NEAR = ARTICLE.replace("bright blankets", "bright woollen blankets")
OTHER = "A short note about the weather: rain in the morning, sun in the afternoon."


@pytest.fixture
def shards(tmp_path: Path, make_shard) -> dict[str, Path]:
    first = make_shard("a.jsonl", [{"id": "1", "text": ARTICLE}, {"id": "2", "text": OTHER}])
    second = make_shard(
        "b.jsonl",
        [{"id": "1", "text": ARTICLE}, {"id": "2", "text": NEAR}, {"id": "3", "text": "Hi."}],
    )
    files = {}
    for path in (first, second):
        read = read_shard(path)
        files[path.name] = tmp_path / f"raw-{path.name}.parquet"
        read.docs.write_parquet(files[path.name])
        _write_shard(tmp_path / "store", path.name, read.docs)
    return files


def test_exact_copies_leave_naming_the_kept_one(shards: dict[str, Path]) -> None:
    found = find_duplicates(connect(), list(shards.values()), DedupSettings())
    assert found.select("shard", "doc_id", "reason", "kept_shard", "kept_doc_id").rows() == [
        ("b.jsonl", "1", "exact_duplicate", "a.jsonl", "1")
    ]


def test_near_copies_only_when_asked(shards: dict[str, Path]) -> None:
    found = find_duplicates(connect(), list(shards.values()), DedupSettings(near=True))
    near = found.filter(pl.col("reason") == "near_duplicate")
    assert near.select("shard", "doc_id", "kept_shard", "kept_doc_id").rows() == [
        ("b.jsonl", "2", "a.jsonl", "1")
    ]
    assert near["similarity"][0] >= 0.8
    off = find_duplicates(connect(), list(shards.values()), DedupSettings(near=False))
    assert "near_duplicate" not in set(off["reason"])


def test_duplicates_leave_the_curriculum_with_their_reason(
    shards: dict[str, Path], tmp_path: Path
) -> None:
    con = connect()
    duplicates = find_duplicates(con, list(shards.values()), DedupSettings(near=True))
    ordered = pl.read_parquet(_order(tmp_path / "store", con=con, duplicates=duplicates))
    placed = set(zip(ordered["shard"], ordered["source_doc_id"], strict=True))
    assert ("b.jsonl", "1") not in placed and ("b.jsonl", "2") not in placed
    assert ("a.jsonl", "1") in placed and ("b.jsonl", "3") in placed
    excluded = con.sql(
        "SELECT shard, doc_id, reason, detail FROM excluded ORDER BY 1, 2"
    ).fetchall()
    assert excluded[0][:3] == ("b.jsonl", "1", "exact_duplicate")
    assert excluded[0][3].startswith("of a.jsonl/1")
    assert excluded[1][:3] == ("b.jsonl", "2", "near_duplicate")
    exclusions = tmp_path / "exclusions.parquet"
    con.sql("SELECT * FROM excluded").pl().write_parquet(exclusions)
    outcome = kept_reach_curriculum(
        con, tmp_path / "store" / "ordered.parquet", list(shards.values()), exclusions, []
    )
    assert outcome.passed, outcome.description
