"""The shard sensor over an S3 landing prefix (a real S3-compatible server): each new object is
registered once, objects written in the same second are never skipped, and a changed object
(new ETag) runs again under the same key, a change back to earlier content included."""

import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context
from dagster_aws.s3 import S3Resource

from raising_dagster.resources import RaisingResource
from raising_dagster.sensors import raw_shard_sensor
from raising_dagster.storage import S3Path

pytestmark = pytest.mark.s3


def _tick(instance: DagsterInstance, landing: S3Path, cursor: str | None, endpoint: str):
    with build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "raising": RaisingResource(landing_dir=str(landing), store_dir="unused"),
            "s3": S3Resource(endpoint_url=endpoint),
        },
    ) as context:
        return raw_shard_sensor(context)


def _seconds(path: S3Path) -> int:
    return path.stat().st_mtime_ns // 10**9


def test_new_objects_register_once_even_when_written_in_the_same_second(
    bucket: S3Path, s3_env: str
) -> None:
    landing = bucket / "landing"
    first = landing / "a.jsonl"
    first.write_text('{"text": "first"}\n')
    with DagsterInstance.ephemeral() as instance:
        result = _tick(instance, landing, None, s3_env)
        assert isinstance(result, SensorResult)
        assert [r.partition_key for r in result.run_requests] == ["a.jsonl"]
        assert [r.partition_keys for r in result.dynamic_partitions_requests] == [["a.jsonl"]]
        instance.add_dynamic_partitions("raw_shards", ["a.jsonl"])
        cursor = result.cursor

        # written right after the tick, most likely within the same second as a.jsonl: a
        # last-modified watermark (exclusive, one-second resolution) would skip some of them
        late = [landing / f"late-{i}.jsonl" for i in range(5)]
        for i, path in enumerate(late):
            path.write_text(f'{{"text": "late {i}"}}\n')
        same_second = [p.name for p in late if _seconds(p) == _seconds(first)]
        new = _tick(instance, landing, cursor, s3_env)
        assert sorted(r.partition_key for r in new.run_requests) == [p.name for p in late], (
            same_second
        )
        assert [sorted(r.partition_keys) for r in new.dynamic_partitions_requests] == [
            [p.name for p in late]
        ]
        # and nothing twice: the same listing again asks for nothing
        again = _tick(instance, landing, new.cursor, s3_env)
        assert isinstance(again, SkipReason)


def test_a_changed_object_runs_again_a_then_b_then_a(bucket: S3Path, s3_env: str) -> None:
    landing = bucket / "landing"
    shard = landing / "a.jsonl"
    keys, etags = [], []
    with DagsterInstance.ephemeral() as instance:
        cursor = None
        for content in ('{"text": "version A"}\n', '{"text": "version B"}\n') * 2:
            shard.write_text(content)
            etags.append(shard.etag)
            result = _tick(instance, landing, cursor, s3_env)
            assert isinstance(result, SensorResult), content
            assert [r.partition_key for r in result.run_requests] == ["a.jsonl"]
            keys += [r.run_key for r in result.run_requests]
            # registered once, on the first tick only
            assert len(result.dynamic_partitions_requests) == (1 if cursor is None else 0)
            cursor = result.cursor
        # the same content uploaded again (same ETag) is not a change
        shard.write_text('{"text": "version B"}\n')
        assert isinstance(_tick(instance, landing, cursor, s3_env), SkipReason)
    assert etags[0] == etags[2] and etags[1] == etags[3]  # A's ETag comes back with A
    assert len(keys) == len(set(keys)) == 4
    assert keys[0].startswith("a.jsonl@0:") and keys[3].startswith("a.jsonl@3:")
