"""The sensor that registers new raw shards as partitions and asks for their runs.

The landing folder may be local or an S3 prefix. On S3 every tick lists the whole prefix (one
paginated listing through dagster-aws' S3Resource) and compares each object's key and ETag with
the cursor: no `since_key`/`since_last_modified` watermark, which skips objects written in the
same second as the last one seen (S3 times have a one-second resolution) or listed out of order.
"""

import json
from dataclasses import dataclass

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
from dagster_aws.s3 import S3Resource

from raising_dagster.config import sha256_file
from raising_dagster.jobs import SHARD_ASSETS, raise_shard_job
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.stages.ingest import scan_landing
from raising_dagster.stages.shards import Withdrawals
from raising_dagster.storage import Location, S3Path

_SKIPPED = "_skipped"  # cursor entry of skipped file names (a shard key never starts with "_")


@dataclass(frozen=True)
class ShardPlan:
    new: list[str]
    changed: list[str]
    cursor: dict[str, dict[str, object]]

    def run_key(self, key: str) -> str:
        """Unique per content change: A, then B, then A again gives three keys."""
        entry = self.cursor[key]
        version = entry["etag"] if "etag" in entry else entry["sha"]
        return f"{key}@{entry.get('generation', 0)}:{version}"


def _version(path: Location, before: dict[str, object] | None) -> dict[str, object] | None:
    """What identifies a shard's content: for an S3 object its ETag (from the listing, no
    download); for a local file its SHA-256, computed only when size or mtime moved. None: the
    same as `before`."""
    stat = path.stat()
    if isinstance(path, S3Path):
        if before and before.get("etag") == stat.etag:
            return None
        return {"etag": stat.etag, "size": stat.st_size}
    if before and before.get("size") == stat.st_size and before.get("mtime_ns") == stat.st_mtime_ns:
        return None
    return {"sha": sha256_file(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def plan_shards(shards: dict[str, Location], cursor: dict[str, dict[str, object]]) -> ShardPlan:
    """Which shards are new and which changed content since the cursor (`_version`). Each content
    change bumps the shard's generation, so a change back to earlier content runs again."""
    new, changed, seen = [], [], {}
    for key, path in shards.items():
        before = cursor.get(key)
        version = _version(path, before)
        if version is None and before is not None:
            seen[key] = before
            continue
        generation = int(before.get("generation", 0)) if before else 0
        content = "etag" if "etag" in version else "sha"
        if before is None:
            new.append(key)
        elif before.get(content) != version[content]:
            changed.append(key)
            generation += 1
        seen[key] = {**version, "generation": generation}
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
        # an S3 shard is known by its ETag, a local one by its SHA-256
        field = "etag" if "etag" in plan.cursor[key] else "sha"
        value = event.metadata.get("etag" if field == "etag" else "content_sha") if event else None
        if value is not None and getattr(value, "value", value) == plan.cursor[key][field]:
            raised[key] = records[0].run_id
    return raised


@sensor(
    job=raise_shard_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Registers each new raw shard in the landing folder (local, or an S3 prefix) as a "
    "partition and raises it; re-raises a shard whose content changed (SHA-256, or the S3 ETag); "
    "logs each file it skips, once, with the reason.",
)
def raw_shard_sensor(
    context: SensorEvaluationContext, raising: RaisingResource, s3: S3Resource
) -> SensorResult | SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {}
    reported = set(cursor.pop(_SKIPPED, []))
    landing = raising.settings.landing_dir
    if isinstance(landing, S3Path):
        landing = landing.using(s3.get_client())
    scan = scan_landing(landing)
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
    withdrawn = Withdrawals.load(raising.layout.withdrawals_file).shards
    keys = [k for k in new + plan.changed if k not in withdrawn]
    held = sorted(set(new + plan.changed) - set(keys))
    for key in held:
        context.log.info(f"shard {key} is withdrawn ({withdrawn[key]}): not raised")
    why = [f"{len(raised)} shards already raised with the same content"] if raised else []
    why += [f"{len(held)} shards withdrawn"] if held else []
    return SensorResult(
        run_requests=[RunRequest(partition_key=k, run_key=plan.run_key(k)) for k in keys],
        dynamic_partitions_requests=[raw_shards.build_add_request(new)] if new else [],
        cursor=json.dumps({**plan.cursor, _SKIPPED: skipped_names}, sort_keys=True),
        skip_reason=None if keys else f"no shard to run: {', '.join(why)}",
    )
