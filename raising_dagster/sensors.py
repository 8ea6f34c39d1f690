"""The sensor that registers new raw shards as partitions and asks for their runs."""

import json
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from raising_dagster.config import sha256_file
from raising_dagster.jobs import raise_shard_job
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.stages.ingest import list_shards


@dataclass(frozen=True)
class ShardPlan:
    new: list[str]
    changed: list[str]
    cursor: dict[str, dict[str, object]]

    def run_key(self, key: str) -> str:
        return f"{key}@{self.cursor[key]['sha']}"


def plan_shards(shards: dict[str, Path], cursor: dict[str, dict[str, object]]) -> ShardPlan:
    """Which shards are new and which changed content since the cursor; hashes a file only when
    its size or modification time moved."""
    new, changed, seen = [], [], {}
    for key, path in shards.items():
        stat = path.stat()
        before = cursor.get(key)
        if before and before["size"] == stat.st_size and before["mtime_ns"] == stat.st_mtime_ns:
            seen[key] = before
            continue
        sha = sha256_file(path)
        seen[key] = {"sha": sha, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if before is None:
            new.append(key)
        elif before["sha"] != sha:
            changed.append(key)
    # Shards that left the landing folder stay in the cursor: back unchanged, they are not new.
    return ShardPlan(new=new, changed=changed, cursor={**cursor, **seen})


@sensor(
    job=raise_shard_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Registers each new raw shard in the landing folder as a partition and raises it; "
    "re-raises a shard whose content changed.",
)
def raw_shard_sensor(
    context: SensorEvaluationContext, raising: RaisingResource
) -> SensorResult | SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {}
    plan = plan_shards(list_shards(Path(raising.settings.landing_dir)), cursor)
    if not plan.new and not plan.changed:
        return SkipReason(f"no new or changed shards among {len(plan.cursor)} seen")
    keys = plan.new + plan.changed
    return SensorResult(
        run_requests=[RunRequest(partition_key=k, run_key=plan.run_key(k)) for k in keys],
        dynamic_partitions_requests=[raw_shards.build_add_request(plan.new)] if plan.new else [],
        cursor=json.dumps(plan.cursor, sort_keys=True),
    )
