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

from dagster import AssetsDefinition, DagsterInstance, DagsterRunStatus
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

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


# Why a blocking check does not vouch for the data, and what to do about it (one each).
FAILED = "failed"
NEVER_EVALUATED = "has never been evaluated"
EXECUTION_FAILED = "did not run (its run failed)"
SKIPPED = "was skipped"
IN_PROGRESS = "is still running"
STALE = "is stale"
ADVICE = {
    FAILED: "fix the data or the stage that made it, re-materialize the named partitions "
    "(raise_shard) and publish again",
    NEVER_EVALUATED: "materialize the named partitions (raise_shard, or a backfill of the shard "
    "assets) and publish again",
    EXECUTION_FAILED: "see the named run's failed step, fix it, re-materialize the named "
    "partitions and publish again",
    SKIPPED: "the named run ended without evaluating the check (canceled, or a run over a "
    "partition range, whose check results Dagster stores without a partition): "
    "re-materialize the named partitions one partition per run (raise_shard) and publish again",
    IN_PROGRESS: "wait for the named run to finish, then publish again",
    STALE: "re-materialize the named partitions with their checks and publish again",
}


def _planned_outcome(instance: DagsterInstance, run_id: str | None) -> tuple[str, str]:
    """Why a check planned in `run_id` has no result: the run is still going, failed before it,
    or ended without evaluating it (skipped)."""
    run = instance.get_run_by_id(run_id) if run_id else None
    if run is None:
        return SKIPPED, "its run was deleted"
    if not run.is_finished:
        return IN_PROGRESS, f"the run is {run.status.value.lower()}"
    if run.status == DagsterRunStatus.FAILURE:
        return EXECUTION_FAILED, "the run failed before the check was evaluated"
    if ASSET_PARTITION_RANGE_START_TAG in run.tags:
        start = run.tags[ASSET_PARTITION_RANGE_START_TAG]
        end = run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
        return SKIPPED, (
            f"the run covered the partition range {start}..{end}, so Dagster stored its check "
            "results without a partition"
        )
    return SKIPPED, f"the run ended ({run.status.value.lower()}) without evaluating the check"


def _problem(
    instance: DagsterInstance, key: Any, partition: str | None, status: Any, run_id: str | None
) -> CheckProblem:
    offending: dict[str, Any] = {}
    if status == AssetCheckExecutionRecordStatus.FAILED:
        outcome, description = FAILED, ""
        records = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=1, partition_filter=PartitionKeyFilter(key=partition) if partition else None
        )
        evaluation = records[0].evaluation if records else None
        if evaluation is not None and hasattr(evaluation, "passed"):
            description = evaluation.description or ""
            offending = _offending(dict(evaluation.metadata))
    else:
        outcome, description = _planned_outcome(instance, run_id)
    return CheckProblem(
        asset=key.asset_key.to_user_string(),
        check=key.name,
        partition=partition,
        status=outcome,
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
                            NEVER_EVALUATED,
                            None,
                            "no run has evaluated it for this partition",
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
                            STALE,
                            info.latest_planned_run_id,
                            "the asset was materialized again without this check",
                            {},
                        )
                    )
    return problems


def refusal(problems: Sequence[CheckProblem]) -> str:
    """A message a person can act on: how many checks do not pass and why (failed, never ran,
    skipped, still running), each named with its partition and run, and what to do for each."""
    by_status: dict[str, list[CheckProblem]] = {}
    for problem in problems:
        by_status.setdefault(problem.status, []).append(problem)
    counts = ", ".join(f"{len(found)} {status}" for status, found in by_status.items())
    lines = [
        f"training_ready_corpus not published: {len(problems)} blocking check(s) upstream do not "
        f"pass ({counts}); the previous training-ready corpus is kept unchanged."
    ]
    for status, found in by_status.items():
        lines.append(f"{len(found)} {status}: {ADVICE[status]}.")
        lines += [f"- {p.line()}" for p in found]
    return "\n".join(lines)


def left_out_reason(
    instance: DagsterInstance, guarded: Sequence[AssetsDefinition], shard: str
) -> dict[str, str]:
    """Why a registered shard without every rendering is left out of a publication: its blocking
    checks failed (`failed_checks`, named), its run failed (`run_failed`), it is being raised
    (`in_progress`), or it was never raised through every stage (`not_raised`)."""
    problems = blocking_failures(instance, guarded, [shard])
    failed = [p for p in problems if p.status == FAILED]
    if failed:
        return {
            "shard": shard,
            "reason": "failed_checks",
            "detail": "; ".join(f"{p.asset}.{p.check}: {p.description}" for p in failed),
        }
    for status, reason in ((EXECUTION_FAILED, "run_failed"), (IN_PROGRESS, "in_progress")):
        found = [p for p in problems if p.status == status]
        if found:
            return {"shard": shard, "reason": reason, "detail": f"run {found[0].run_id}"}
    return {
        "shard": shard,
        "reason": "not_raised",
        "detail": "not yet materialized through every shard asset (raise_shard)",
    }
