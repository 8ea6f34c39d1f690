"""Run the whole pipeline through Dagster: one `raise_shard` run per shard, then the curriculum."""

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterInstance, ExecuteInProcessResult

from raising_dagster.definitions import build_definitions
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.stages.ingest import list_shards

# Runs log step events at INFO on the console; the full event log is in the instance (the UI).
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dataclass
class PipelineReport:
    """What a pipeline run did: shards raised, run ids, and why publication stopped, if it did."""

    shards: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    published: bool = False
    refused: bool = False  # a blocking quality check failed, or the publication gate refused
    errored: bool = False  # a step failed for another reason (an exception)


def _failures(result: ExecuteInProcessResult, scope: str) -> list[str]:
    found = [
        f"[{scope}] check {e.check_name!r} on {e.asset_key.to_user_string()} failed: "
        f"{e.description or 'no description'}; {dict(e.metadata)}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        while error is not None and error.cause is not None:
            error = error.cause
        message = error.message.strip() if error is not None else "unknown error"
        found.append(f"[{scope}] step {event.step_key} failed: {message}")
    return found or ([] if result.success else [f"[{scope}] run {result.run_id} failed"])


def _classify(result: ExecuteInProcessResult, report: PipelineReport) -> None:
    """Mark the report refused (quality checks) and/or errored (any other step failure)."""
    if any(not e.passed for e in result.get_asset_check_evaluations()):
        report.refused = True
    for event in result.get_step_failure_events():
        data = event.event_specific_data
        error = data.error if data else None
        gate = (
            data is not None
            and data.user_failure_data is not None
            and ("failed_checks" in (data.user_failure_data.metadata or {}))
        )
        if gate or (error is not None and error.cls_name == "DagsterAssetCheckFailedError"):
            report.refused = True
        else:
            report.errored = True


def run_pipeline(
    raising: RaisingResource,
    instance: DagsterInstance,
    progress: Callable[[str], None] = lambda message: None,
) -> PipelineReport:
    """Register every shard of the landing folder, raise each, then publish the curriculum unless
    a blocking check failed; `progress` hears a line per finished run. A vLLM engine started by
    the runs is shared by all of them and shut down at the end."""
    try:
        return _run_pipeline(raising, instance, progress)
    finally:
        if "raising_dagster.teacher.vllm" in sys.modules:
            sys.modules["raising_dagster.teacher.vllm"].shutdown_engines()


def _run_pipeline(
    raising: RaisingResource, instance: DagsterInstance, progress: Callable[[str], None]
) -> PipelineReport:
    defs = build_definitions(raising)
    report = PipelineReport(shards=list(list_shards(Path(raising.settings.landing_dir))))
    if not report.shards:
        report.failures.append(f"no shards found in {raising.settings.landing_dir}")
        return report
    known = set(instance.get_dynamic_partitions(raw_shards.name))
    instance.add_dynamic_partitions(raw_shards.name, [k for k in report.shards if k not in known])
    shard_job = defs.resolve_job_def("raise_shard")
    for key in report.shards:
        result = shard_job.execute_in_process(
            partition_key=key, instance=instance, run_config=RUN_CONFIG, raise_on_error=False
        )
        report.run_ids.append(result.run_id)
        report.failures += _failures(result, f"shard {key}")
        _classify(result, report)
        progress(f"raise_shard {key}: {'ok' if result.success else 'FAILED'} (run {result.run_id})")
    if report.failures:
        return report
    result = defs.resolve_job_def("publish_curriculum").execute_in_process(
        instance=instance, run_config=RUN_CONFIG, raise_on_error=False
    )
    report.run_ids.append(result.run_id)
    report.failures += _failures(result, "curriculum")
    _classify(result, report)
    report.published = not report.failures
    return report
