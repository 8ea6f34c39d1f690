"""Issue 11, item 1, for real: an asset backfill of every asset over every shard, launched through
GraphQL against `dagster dev` (what "Materialize all…" sends), publishes the corpus."""

import json
from pathlib import Path

import pytest

from raising_dagster.jobs import CURRICULUM_ASSETS, SHARD_ASSETS
from tests.dagster_dev import (
    add_partitions,
    dagster_dev,
    dagster_env,
    graphql,
    latest_materialization,
    wait_for_backfill,
)


@pytest.mark.slow
def test_an_asset_backfill_of_every_asset_publishes(tmp_path: Path, landing: Path) -> None:
    store = tmp_path / "store"
    env = dagster_env(tmp_path / "home", store, landing)
    with dagster_dev(env, tmp_path / "dagster-dev.log") as url:
        add_partitions(url, ["alpha.jsonl", "beta.jsonl"])
        launched = graphql(
            url,
            """mutation($params: LaunchBackfillParams!) {
                 launchPartitionBackfill(backfillParams: $params) {
                   __typename ... on LaunchBackfillSuccess { backfillId }
                   ... on PythonError { message } } }""",
            {
                "params": {
                    # every asset of the `raising` group, as "Materialize all…" on its graph
                    "assetSelection": [{"path": [a]} for a in SHARD_ASSETS + CURRICULUM_ASSETS],
                    "allPartitions": True,
                }
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill = wait_for_backfill(url, launched["backfillId"], timeout_s=300)
        assert backfill["status"] == "COMPLETED_SUCCESS", backfill
        # one run per shard, then the curriculum
        assert sorted(r["status"] for r in backfill["runs"]) == ["SUCCESS"] * 3
        published = latest_materialization(url, "training_ready_corpus")
        assert published is not None, "the corpus was not published"
    manifest = json.loads((store / "training_ready" / "manifest.json").read_text())
    assert manifest["records"] > 0
    assert [s["shard"] for s in manifest["input_shards"]] == ["alpha.jsonl", "beta.jsonl"]
