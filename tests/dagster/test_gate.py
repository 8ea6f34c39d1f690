"""The publication gate's message tells a failed check from one that never ran, one skipped by its
run (the multi-partition backfill of issue 11), one whose run failed first, and one still running.
Real Dagster runs on an ephemeral instance."""

from collections.abc import Iterator

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    DagsterInstance,
    DynamicPartitionsDefinition,
    MaterializeResult,
    asset,
    materialize,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from raising_dagster.expectations.gate import (
    EXECUTION_FAILED,
    FAILED,
    NEVER_EVALUATED,
    SKIPPED,
    blocking_failures,
    refusal,
)

shards = DynamicPartitionsDefinition(name="gate_test_shards")
CHECK = "records_hold"


@asset(
    partitions_def=shards,
    # the policy the shard assets had before issue 11: a backfill runs a partition *range*
    backfill_policy=BackfillPolicy.multi_run(1),
    check_specs=[AssetCheckSpec(CHECK, asset="shard_docs", blocking=True, partitions_def=shards)],
)
def shard_docs(context: AssetExecutionContext) -> MaterializeResult:
    (key,) = context.partition_keys
    if key == "crashes":
        raise RuntimeError("the step raised before its checks")
    return MaterializeResult(
        check_results=[
            AssetCheckResult(
                check_name=CHECK,
                passed=key != "fails",
                description="2 records lost" if key == "fails" else "all records kept",
                metadata={"lost_doc_ids": ["d-1", "d-2"]} if key == "fails" else {},
            )
        ]
    )


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(
            shards.name, ["good", "fails", "crashes", "ranged", "never"]
        )
        yield instance


def _run(instance: DagsterInstance, key: str, ranged: bool = False) -> None:
    materialize(
        [shard_docs],
        instance=instance,
        partition_key=None if ranged else key,
        tags={ASSET_PARTITION_RANGE_START_TAG: key, ASSET_PARTITION_RANGE_END_TAG: key}
        if ranged
        else None,
        raise_on_error=False,
    )


def test_the_gate_says_why_each_check_does_not_vouch(instance: DagsterInstance) -> None:
    for key in ("good", "fails", "crashes"):
        _run(instance, key)
    _run(instance, "ranged", ranged=True)
    problems = blocking_failures(
        instance, [shard_docs], ["good", "fails", "crashes", "ranged", "never"]
    )
    by_partition = {p.partition: p for p in problems}
    assert set(by_partition) == {"fails", "crashes", "ranged", "never"}
    assert by_partition["fails"].status == FAILED
    assert by_partition["fails"].offending == {"lost_doc_ids": ["d-1", "d-2"]}
    assert by_partition["crashes"].status == EXECUTION_FAILED
    assert by_partition["ranged"].status == SKIPPED
    assert "partition range ranged..ranged" in by_partition["ranged"].description
    assert by_partition["never"].status == NEVER_EVALUATED and by_partition["never"].run_id is None

    message = refusal(problems)
    assert "4 blocking check(s)" in message
    assert (
        "1 failed, 1 did not run (its run failed), 1 was skipped, 1 has never been evaluated"
        in message
    )
    # each kind of problem comes with what to do about it, then the checks it names
    assert "1 was skipped: the named run ended without evaluating the check" in message
    assert "one partition per run" in message
    assert "check 'records_hold' on shard_docs[fails] failed in run " in message
    assert "2 records lost (offending: lost_doc_ids: ['d-1', 'd-2'])" in message
    assert "shard_docs[never] has never been evaluated" in message
