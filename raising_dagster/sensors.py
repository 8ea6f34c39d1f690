"""The sensor that registers new raw shards as partitions and asks for their runs."""

import json
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from raising_dagster.config import sha256_file
from raising_dagster.jobs import SHARD_ASSETS, raise_shard_job
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.stages.ingest import scan_landing

_SKIPPED = "_skipped"  # cursor entry of skipped file names (a shard key never starts with "_")


@dataclass(frozen=True)
class ShardPlan:
    new: list[str]
    changed: list[str]
    cursor: dict[str, dict[str, object]]

    def run_key(self, key: str) -> str:
        """Unique per content change: A, then B, then A again gives three keys."""
        entry = self.cursor[key]
        return f"{key}@{entry.get('generation', 0)}:{entry['sha']}"


def plan_shards(shards: dict[str, Path], cursor: dict[str, dict[str, object]]) -> ShardPlan:
    """Which shards are new and which changed content since the cursor; hashes a file only when
    its size or modification time moved. Each content change bumps the shard's generation."""
    new, changed, seen = [], [], {}
    for key, path in shards.items():
        stat = path.stat()
        before = cursor.get(key)
        if before and before["size"] == stat.st_size and before["mtime_ns"] == stat.st_mtime_ns:
            seen[key] = before
            continue
        sha = sha256_file(path)
        generation = int(before.get("generation", 0)) if before else 0
        if before is None:
            new.append(key)
        elif before["sha"] != sha:
            changed.append(key)
            generation += 1
        seen[key] = {
            "sha": sha,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "generation": generation,
        }
    # Shards that left the landing folder stay in the cursor: back unchanged, they are not new.
    return ShardPlan(new=new, changed=changed, cursor={**cursor, **seen})


def already_raised(instance: DagsterInstance, plan: ShardPlan, keys: list[str]) -> dict[str, str]:
    """Of the shards the cursor has not seen, those already raised with the same content (by
    `raising run`, a backfill or a run from the UI, before the sensor was turned on): registered,
    materialized through every shard asset, and `raw_docs` last read the same content hash.
    Returns each such shard with the run that read it."""
    registered = set(instance.get_dynamic_partitions(raw_shards.name))
    candidates = [k for k in keys if k in registered]
    for asset in SHARD_ASSETS:
        if not candidates:
            break
        materialized = instance.get_materialized_partitions(AssetKey(asset))
        candidates = [k for k in candidates if k in materialized]
    raised = {}
    for key in candidates:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("raw_docs"), asset_partitions=[key]), limit=1
        ).records
        event = records[0].asset_materialization if records else None
        sha = event.metadata.get("content_sha") if event else None
        if sha is not None and getattr(sha, "value", sha) == plan.cursor[key]["sha"]:
            raised[key] = records[0].run_id
    return raised


@sensor(
    job=raise_shard_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Registers each new raw shard in the landing folder as a partition and raises it; "
    "re-raises a shard whose content changed; logs each file it skips, once, with the reason.",
)
def raw_shard_sensor(
    context: SensorEvaluationContext, raising: RaisingResource
) -> SensorResult | SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {}
    reported = set(cursor.pop(_SKIPPED, []))
    scan = scan_landing(Path(raising.settings.landing_dir))
    for skipped in scan.skipped:
        if skipped.name not in reported:
            context.log.warning(skipped.line())
    plan = plan_shards(scan.shards, cursor)
    skipped_names = sorted(s.name for s in scan.skipped)
    raised = already_raised(context.instance, plan, plan.new) if plan.new else {}
    for key, run_id in sorted(raised.items()):
        context.log.info(
            f"shard {key} was already raised with this content (run {run_id}): not run again"
        )
    new = [k for k in plan.new if k not in raised]
    if not new and not plan.changed and not raised and set(skipped_names) == reported:
        return SkipReason(f"no new or changed shards among {len(plan.cursor)} seen")
    keys = new + plan.changed
    return SensorResult(
        run_requests=[RunRequest(partition_key=k, run_key=plan.run_key(k)) for k in keys],
        dynamic_partitions_requests=[raw_shards.build_add_request(new)] if new else [],
        cursor=json.dumps({**plan.cursor, _SKIPPED: skipped_names}, sort_keys=True),
        skip_reason=None
        if keys
        else f"{len(raised)} shards already raised with the same content; none new or changed",
    )
