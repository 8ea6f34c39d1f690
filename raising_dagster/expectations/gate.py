"""The publication gate: the latest evaluation of every upstream check, read from the instance.

Blocking checks stop downstream assets within a run only. `training_ready_corpus` calls
`blocking_failures` before it writes anything, so a run launched later (from the UI, a schedule or
`raising run`) still refuses to publish a curriculum whose upstream checks last failed, never ran,
or ran against an older materialization than the one on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dagster import AssetsDefinition, DagsterInstance
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

_OFFENDING_KEYS = ("_doc_ids", "failed_expectations", "uncovered_stage_values", "not_rising")
_SHOWN = 5


@dataclass(frozen=True)
class CheckProblem:
    """One guarding check that does not vouch for the data: why, where, and what it found."""

    asset: str
    check: str
    partition: str | None
    status: str
    run_id: str | None
    description: str
    offending: dict[str, Any]

    def line(self) -> str:
        where = f"{self.asset}[{self.partition}]" if self.partition else self.asset
        found = "; ".join(f"{k}: {v}" for k, v in self.offending.items())
        run = f" in run {self.run_id}" if self.run_id else ""
        return f"check {self.check!r} on {where} {self.status}{run}: {self.description}" + (
            f" (offending: {found})" if found else ""
        )


def _offending(metadata: dict[str, Any]) -> dict[str, Any]:
    shown = {}
    for key, meta in metadata.items():
        if key.endswith(_OFFENDING_KEYS):
            value = getattr(meta, "value", meta)
            shown[key] = value[:_SHOWN] if isinstance(value, list) else value
    return shown


def _problem(
    instance: DagsterInstance, key: Any, partition: str | None, status: Any, run_id: str | None
) -> CheckProblem:
    description, offending = "no result: the step did not run or is still running", {}
    if status == AssetCheckExecutionRecordStatus.FAILED:
        records = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=1, partition_filter=PartitionKeyFilter(key=partition) if partition else None
        )
        evaluation = records[0].evaluation if records else None
        if evaluation is not None and hasattr(evaluation, "passed"):
            description = evaluation.description or ""
            offending = _offending(dict(evaluation.metadata))
    return CheckProblem(
        asset=key.asset_key.to_user_string(),
        check=key.name,
        partition=partition,
        status={
            AssetCheckExecutionRecordStatus.FAILED: "failed",
            AssetCheckExecutionRecordStatus.PLANNED: "did not complete (skipped or in progress)",
        }.get(status, str(status)),
        run_id=run_id,
        description=description,
        offending=offending,
    )


def blocking_failures(
    instance: DagsterInstance, guarded: Sequence[AssetsDefinition], partitions: Sequence[str]
) -> list[CheckProblem]:
    """Each blocking check of the `guarded` assets (for partitioned ones, on each of `partitions`)
    whose latest evaluation is not a pass of the latest materialization."""
    problems = []
    for assets_def in guarded:
        keys = [spec.key for spec in assets_def.check_specs if spec.blocking]
        if not keys:
            continue
        partitioned = assets_def.partitions_def is not None
        wanted = list(partitions) if partitioned else [None]
        infos = {
            (i.check_key, i.partition_key): i
            for i in instance.event_log_storage.get_asset_check_partition_info(
                keys, partition_keys=list(partitions) if partitioned else None
            )
        }
        for key in keys:
            for partition in wanted:
                info = infos.get((key, partition))
                if info is None:
                    problems.append(
                        CheckProblem(
                            key.asset_key.to_user_string(),
                            key.name,
                            partition,
                            "has never been evaluated",
                            None,
                            "materialize the asset with its checks",
                            {},
                        )
                    )
                elif info.latest_execution_status != AssetCheckExecutionRecordStatus.SUCCEEDED:
                    problems.append(
                        _problem(
                            instance,
                            key,
                            partition,
                            info.latest_execution_status,
                            info.latest_planned_run_id,
                        )
                    )
                elif not info.is_current:
                    problems.append(
                        CheckProblem(
                            key.asset_key.to_user_string(),
                            key.name,
                            partition,
                            "is stale",
                            info.latest_planned_run_id,
                            "the asset was materialized again without this check",
                            {},
                        )
                    )
    return problems


def refusal(problems: Sequence[CheckProblem]) -> str:
    """A message a person can act on: what failed where, and what to do."""
    return (
        f"training_ready_corpus not published: {len(problems)} blocking check(s) upstream do not "
        "pass; the previous training-ready corpus is kept unchanged. Fix the data or the stage "
        "that made it, re-materialize the named partitions (raise_shard) and publish again.\n"
        + "\n".join(f"- {p.line()}" for p in problems)
    )
