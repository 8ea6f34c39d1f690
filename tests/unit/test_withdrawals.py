"""Withdrawals (issue 11): ids resolved against the store's raw documents, and a withdrawn
document's records taken out of an ordered curriculum with nothing else changed."""

import json
from pathlib import Path

import polars as pl
import pytest

from raising_dagster.stages.order import connect
from raising_dagster.stages.shards import Withdrawals, drop_documents, find_documents
from raising_dagster.store import StoreLayout, write_parquet


def _raw(layout: StoreLayout, shard: str, ids: list[str]) -> None:
    write_parquet(
        pl.DataFrame({"doc_id": ids, "shard": [shard] * len(ids), "text": ["t"] * len(ids)}),
        layout.shard_file("raw_docs", shard),
    )


def test_ids_resolve_to_one_document_or_say_why_not(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path)
    _raw(layout, "a.jsonl", ["x", "shared"])
    _raw(layout, "b.jsonl", ["y", "shared"])
    assert find_documents(layout, ["x", "b.jsonl/shared", "a.jsonl/shared#social"]) == [
        ("a.jsonl", "shared"),
        ("a.jsonl", "x"),
        ("b.jsonl", "shared"),
    ]
    with pytest.raises(LookupError, match=r"'shared' is a document of several shards"):
        find_documents(layout, ["shared"])
    with pytest.raises(LookupError, match="'nope' names no raw document"):
        find_documents(layout, ["nope"])


def test_withdrawals_round_trip_through_their_file(tmp_path: Path) -> None:
    path = tmp_path / "withdrawals.json"
    assert Withdrawals.load(path) == Withdrawals()
    made = Withdrawals().with_documents([("a", "x")], "privacy").with_shards(["b"], "license")
    path.write_text(json.dumps(made.to_json()))
    assert Withdrawals.load(path) == made


def test_a_withdrawn_document_leaves_the_order_and_nothing_else_changes(tmp_path: Path) -> None:
    ordered = tmp_path / "ordered.parquet"
    exclusions = tmp_path / "exclusions.parquet"
    rows = [("a", "d1", "experiential"), ("a", "d2", "experiential"), ("a", "d1", "social")]
    rows += [("b", "d1", "experiential"), ("a", "d3", "social")]
    write_parquet(
        pl.DataFrame(
            {
                "position": range(5),
                "shard": [r[0] for r in rows],
                "source_doc_id": [r[1] for r in rows],
                "variant": [r[2] for r in rows],
                "stage": ["s0", "s0", "s1", "s1", "s2"],
            }
        ),
        ordered,
    )
    write_parquet(
        pl.DataFrame(
            {"shard": ["a"], "doc_id": ["d3"], "variant": ["social"], "reason": ["safety"]}
        ),
        exclusions,
    )
    con = connect()
    try:
        dropped = drop_documents(con, ordered, exclusions, {("a", "d1"): "privacy"})
    finally:
        con.close()
    assert dropped == [
        {"shard": "a", "doc_id": "d1", "reason": "withdrawn:privacy", "records_dropped": 2}
    ]
    after = pl.read_parquet(ordered).sort("position")
    assert after.select("position", "shard", "source_doc_id", "stage").rows() == [
        (0, "a", "d2", "s0"),
        (1, "b", "d1", "s1"),  # the same id in another shard stays
        (2, "a", "d3", "s2"),
    ]
    assert pl.read_parquet(exclusions).sort("doc_id").rows() == [
        ("a", "d1", "all", "withdrawn:privacy"),
        ("a", "d3", "social", "safety"),
    ]
