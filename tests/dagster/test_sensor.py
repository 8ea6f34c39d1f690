"""The raw shard sensor: new shard -> partition and run; unchanged -> nothing; changed -> re-run."""

import json
import os
from pathlib import Path

from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context
from dagster_aws.s3 import S3Resource

from raising_dagster.resources import RaisingResource
from raising_dagster.sensors import raw_shard_sensor
from raising_dagster.stages.shards import Withdrawals
from raising_dagster.store import StoreLayout


def _tick(instance: DagsterInstance, landing: Path, cursor: str | None, store: Path | None = None):
    with build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "raising": RaisingResource(landing_dir=str(landing), store_dir=str(store or "unused")),
            "s3": S3Resource(),
        },
    ) as context:
        return raw_shard_sensor(context)


def test_sensor_registers_new_shards_once_and_reruns_changed_ones(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.jsonl").write_text('{"text": "first"}\n')
    with DagsterInstance.ephemeral() as instance:
        result = _tick(instance, landing, None)
        assert isinstance(result, SensorResult)
        assert [r.partition_key for r in result.run_requests] == ["a.jsonl"]
        assert [r.partition_keys for r in result.dynamic_partitions_requests] == [["a.jsonl"]]
        cursor = result.cursor

        again = _tick(instance, landing, cursor)
        assert isinstance(again, SkipReason)

        (landing / "b.jsonl").write_text('{"text": "second"}\n')
        new = _tick(instance, landing, cursor)
        assert [r.partition_key for r in new.run_requests] == ["b.jsonl"]
        assert [r.partition_keys for r in new.dynamic_partitions_requests] == [["b.jsonl"]]
        cursor = new.cursor

        # same content, new modification time: hashed again, not re-run
        os.utime(landing / "a.jsonl", ns=(1, 1))
        touched = _tick(instance, landing, cursor)
        assert isinstance(touched, SkipReason)

        (landing / "a.jsonl").write_text('{"text": "first, edited"}\n')
        changed = _tick(instance, landing, cursor)
        assert [r.partition_key for r in changed.run_requests] == ["a.jsonl"]
        assert changed.dynamic_partitions_requests == []
        first_key = result.run_requests[0].run_key
        assert changed.run_requests[0].run_key != first_key


def test_content_a_then_b_then_a_again_is_run_three_times(tmp_path: Path) -> None:
    """Issue 9, item 5: the run key of a change back to earlier content is new."""
    landing = tmp_path / "landing"
    landing.mkdir()
    shard = landing / "a.jsonl"
    keys = []
    with DagsterInstance.ephemeral() as instance:
        cursor = None
        for content in ('{"text": "version A"}\n', '{"text": "version B"}\n') * 2:
            shard.write_text(content)
            result = _tick(instance, landing, cursor)
            assert isinstance(result, SensorResult), content
            keys += [r.run_key for r in result.run_requests]
            cursor = result.cursor
    assert len(keys) == len(set(keys)) == 4


def test_an_unsafe_file_name_does_not_stop_the_sensor(tmp_path: Path) -> None:
    """Issue 9, item 11: the tick skips the file with a logged reason and raises the rest."""
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "good.jsonl").write_text('{"text": "fine"}\n')
    (landing / "bad\x07name.jsonl").write_text('{"text": "named badly"}\n')
    with DagsterInstance.ephemeral() as instance:
        result = _tick(instance, landing, None)
    assert isinstance(result, SensorResult)
    assert [r.partition_key for r in result.run_requests] == ["good.jsonl"]


def test_turning_the_sensor_on_after_raising_run_runs_only_what_changed(
    tmp_path: Path, landing: Path
) -> None:
    """Issue 11, item 3: shards `raising run` already raised are not run again when the sensor
    is turned on later (its cursor starts empty); a changed or a new shard is."""
    from raising_dagster.runner import run_pipeline
    from tests.conftest import HONESTY_CODEX, write_jsonl

    raising = RaisingResource(
        landing_dir=str(landing), store_dir=str(tmp_path / "store"), codex_path=str(HONESTY_CODEX)
    )
    with DagsterInstance.ephemeral() as instance:
        assert run_pipeline(raising, instance).published
        first = _tick(instance, landing, None)
        assert isinstance(first, SensorResult)
        assert first.run_requests == [] and first.dynamic_partitions_requests == []
        assert "2 shards already raised with the same content" in first.skip_reason.skip_message
        assert isinstance(_tick(instance, landing, first.cursor), SkipReason)

        # a shard edited after the run, and one never seen: those two are run
        write_jsonl(landing / "alpha.jsonl", [{"id": "new-1", "text": "Honesty is a choice."}])
        write_jsonl(landing / "gamma.jsonl", [{"id": "g-1", "text": "Courage is a habit."}])
        later = _tick(instance, landing, first.cursor)
        assert sorted(r.partition_key for r in later.run_requests) == [
            "alpha.jsonl",
            "gamma.jsonl",
        ]
        assert [r.partition_keys for r in later.dynamic_partitions_requests] == [["gamma.jsonl"]]


def test_a_shard_registered_but_not_raised_is_run(tmp_path: Path) -> None:
    """Registered (e.g. from the UI) without a materialization: the sensor does not skip it."""
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.jsonl").write_text('{"text": "first"}\n')
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("raw_shards", ["a.jsonl"])
        result = _tick(instance, landing, None)
    assert [r.partition_key for r in result.run_requests] == ["a.jsonl"]


def test_a_withdrawn_shard_is_not_raised_by_the_sensor(tmp_path: Path) -> None:
    """A shard withdrawn by `raising withdraw --shard` (a license or privacy request) is not read
    again, new or changed; the others are."""
    landing, store = tmp_path / "landing", tmp_path / "store"
    landing.mkdir()
    store.mkdir()
    (landing / "a.jsonl").write_text('{"text": "first"}\n')
    (landing / "b.jsonl").write_text('{"text": "second"}\n')
    withdrawals = Withdrawals().with_shards(["b.jsonl"], "license")
    (store / "withdrawals.json").write_text(json.dumps(withdrawals.to_json()))
    assert StoreLayout(store).withdrawals_file == store / "withdrawals.json"
    with DagsterInstance.ephemeral() as instance:
        result = _tick(instance, landing, None, store)
        assert [r.partition_key for r in result.run_requests] == ["a.jsonl"]
        (landing / "b.jsonl").write_text('{"text": "second, edited"}\n')
        changed = _tick(instance, landing, result.cursor, store)
        assert isinstance(changed, SensorResult) and changed.run_requests == []
        assert "1 shards withdrawn" in changed.skip_reason.skip_message
