"""Backfills of shard partitions (issue 11, item 1): each partition is its own run tagged with its
partition key, so the shards' check results are stored per partition and the gate sees them."""

from dagster import DagsterInstance
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey

from raising_dagster.definitions import defs
from raising_dagster.jobs import SHARD_ASSETS
from raising_dagster.partitions import raw_shards


def test_a_multi_partition_backfill_runs_each_shard_under_its_partition_tag() -> None:
    """The run requests an asset backfill makes for the five per-shard assets over two shards:
    one run per shard, each with `partition_key` (the `dagster/partition` tag), none with a
    partition range (whose check results Dagster 1.13 stores without a partition)."""
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.get_all_asset_keys() if k.to_user_string() in SHARD_ASSETS]
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(raw_shards.name, ["a.jsonl", "b.jsonl"])
        requests = build_run_requests_with_backfill_policies(
            [AssetKeyPartitionKey(k, p) for k in keys for p in ("a.jsonl", "b.jsonl")],
            graph,
            instance,
        )
    assert sorted(r.partition_key for r in requests) == ["a.jsonl", "b.jsonl"]
    for request in requests:
        assert set(request.asset_selection) == set(keys)
        assert not any(t.startswith("dagster/asset_partition_range") for t in request.tags)
