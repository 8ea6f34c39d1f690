"""The Dagster instance on a real PostgreSQL server (dagster-postgres): the shipped dagster.yaml,
10,000 dynamic partitions, the publication gate, `raising run`, and the sensor feeding the run
queue, whose runs go at once within the configured limits."""

import json
import time
from pathlib import Path

import pytest
from dagster import DagsterEvent, DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from raising_dagster.assets.curriculum import GATED_BY
from raising_dagster.assets.framing import TEACHER_POOL
from raising_dagster.definitions import build_definitions
from raising_dagster.expectations.gate import blocking_failures
from raising_dagster.jobs import TEACHER_RUN_TAG
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.runner import (
    RUN_CONFIG,
    RUNNER_HOME_TAG,
    fail_abandoned_runs,
    run_pipeline,
    runner_tags,
)
from tests.cluster.daemon import (
    dagster_cli,
    dagster_env,
    max_overlap,
    open_instance,
    run_intervals,
    running_daemon,
    step_intervals,
    wait_for_runs,
    write_instance_yaml,
)
from tests.conftest import HONESTY_CODEX, raising_cli, write_jsonl
from tests.dagster.test_quality_gates import unframed_fables

TEACHER_STEPS = {"first_person_docs", "experiential_docs", "social_docs"}


def test_shipped_yaml_keeps_runs_events_and_schedules_in_postgres(pg_home: Path) -> None:
    with open_instance(pg_home) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        config = instance.get_concurrency_config()
        assert config.run_queue_config.max_concurrent_runs == 8
        assert config.run_queue_config.tag_concurrency_limits == [
            {"key": TEACHER_RUN_TAG, "limit": 8}
        ]
        assert config.pool_config.default_pool_limit == 4
        assert instance.event_log_storage.supports_global_concurrency_limits
        instance.add_dynamic_partitions(raw_shards.name, ["a.jsonl"])
    # a second process sees what the first wrote: the state is in the database, not the folder
    with open_instance(pg_home) as again:
        assert again.get_dynamic_partitions(raw_shards.name) == ["a.jsonl"]
    assert not list(pg_home.rglob("*.db")), "no SQLite file next to a Postgres instance"


def test_ten_thousand_dynamic_partitions_register_and_list(pg_home: Path) -> None:
    keys = [f"shard-{i:05d}.jsonl" for i in range(10_000)]
    with open_instance(pg_home) as instance:
        instance.add_dynamic_partitions(raw_shards.name, keys)  # one call, as a sensor tick does
        started = time.perf_counter()
        listed = instance.get_dynamic_partitions(raw_shards.name)
        listing_s = time.perf_counter() - started
        assert listed == keys  # all of them, in registration order
        assert instance.has_dynamic_partition(raw_shards.name, "shard-09999.jsonl")
        assert not instance.has_dynamic_partition(raw_shards.name, "shard-10000.jsonl")
        # a second registration of known keys adds nothing (the sensor may repeat a request)
        instance.add_dynamic_partitions(raw_shards.name, keys[:100])
        assert len(instance.get_dynamic_partitions(raw_shards.name)) == 10_000
    # the figure is in the README (benchmarks/bench_partitions.py); here only a sanity bound
    assert listing_s < 30, listing_s


@pytest.mark.slow
def test_publication_gate_reads_check_history_from_postgres(
    pg_home: Path, tmp_path: Path, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raising = RaisingResource(
        landing_dir=str(landing), store_dir=str(tmp_path / "store"), codex_path=str(HONESTY_CODEX)
    )
    manifest = tmp_path / "store" / "training_ready" / "manifest.json"
    with open_instance(pg_home) as instance:
        report = run_pipeline(raising, instance)
        assert report.published, report.failures
        assert blocking_failures(instance, GATED_BY, report.shards) == []
        good = manifest.read_bytes()
        defs = build_definitions(raising)
        with monkeypatch.context() as patch:
            unframed_fables(patch)
            shard = defs.resolve_job_def("raise_shard").execute_in_process(
                partition_key="alpha.jsonl", instance=instance, raise_on_error=False
            )
        assert not shard.success
        problems = blocking_failures(instance, GATED_BY, report.shards)
        found = {(p.asset, p.check, p.partition): p for p in problems}
        framing = found[("first_person_docs", "every_record_framed_in_first_person", "alpha.jsonl")]
        assert "fable-1" in framing.line()
        assert {p.partition for p in problems} == {"alpha.jsonl"}  # beta's checks still pass
        later = defs.resolve_job_def("publish_curriculum").execute_in_process(
            instance=instance, run_config=RUN_CONFIG, raise_on_error=False
        )
        assert not later.success
        assert manifest.read_bytes() == good
        assert run_pipeline(raising, instance).published  # re-raised: the gate clears


@pytest.mark.slow
def test_raising_run_uses_postgres_when_dagster_pg_url_is_set(
    pg_url: str, tmp_path: Path, landing: Path
) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    args = ("--landing", str(landing), "--out", str(out), "--codex", str(HONESTY_CODEX))
    done = raising_cli("run", *args, home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "postgres" in (home / "dagster.yaml").read_text()
    with open_instance(home) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        runs = instance.get_runs()
        assert len(runs) == 3 and {r.status for r in runs} == {DagsterRunStatus.SUCCESS}


@pytest.mark.slow
def test_sensor_feeds_the_run_queue_and_runs_go_at_once_within_the_limits(
    pg_url: str, tmp_path: Path, docs: list[dict[str, str]]
) -> None:
    """The sensor, started through the CLI and ticked by dagster-daemon, registers three shards
    and requests their runs; the queue runs two at once (max_concurrent_runs: 2), and the
    `teacher` pool (limit 1) lets one framing step at a time talk to the teacher."""
    landing, store, home = tmp_path / "landing", tmp_path / "store", tmp_path / "home"
    landing.mkdir()
    names = [f"part-{i}.jsonl" for i in range(3)]
    for i, name in enumerate(names):
        write_jsonl(landing / name, [{**d, "id": f"{d['id']}-{i}"} for d in docs])
    write_instance_yaml(
        home, postgres=True, max_concurrent_runs=2, teacher_pool_limit=1, dequeue_interval_s=1
    )
    env = dagster_env(
        home,
        {
            "RAISING_LANDING_DIR": str(landing),
            "RAISING_STORE_DIR": str(store),
            "RAISING_CODEX_PATH": str(HONESTY_CODEX),
            "RAISING_TEACHER__BACKEND": "template",
        },
    )
    log = tmp_path / "daemon.log"
    with open_instance(home) as instance, running_daemon(env, log):
        dagster_cli(env, "sensor", "start", "raw_shard_sensor")
        runs = wait_for_runs(instance, "raise_shard", len(names), 420, log)
        assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}, log.read_text()[-3000:]
        assert sorted(instance.get_dynamic_partitions(raw_shards.name)) == names
        assert sorted(r.tags["dagster/partition"] for r in runs) == names
        assert {r.tags[TEACHER_RUN_TAG] for r in runs} == {"raise_shard"}
        assert len({r.tags["dagster/run_key"] for r in runs}) == len(names)
        run_ids = [r.run_id for r in runs]
        assert max_overlap(run_intervals(instance, run_ids)) == 2
        steps = step_intervals(instance, run_ids)
        teacher_steps = [s for s in steps if s.name in TEACHER_STEPS]
        assert len(teacher_steps) == 3 * len(names)
        assert max_overlap(teacher_steps) == 1, "the teacher pool's limit held"
        assert instance.event_log_storage.get_concurrency_info(TEACHER_POOL).slot_count == 1
        (state,) = [
            s for s in instance.all_instigator_state() if s.instigator_name == "raw_shard_sensor"
        ]
        assert state.instigator_data is not None  # the sensor's cursor, kept in Postgres
        cursor = json.loads(state.instigator_data.cursor)
        assert sorted(k for k in cursor if not k.startswith("_")) == names
    # publish from the same instance: the gate reads the runs' check results from Postgres
    raising = RaisingResource(
        landing_dir=str(landing), store_dir=str(store), codex_path=str(HONESTY_CODEX)
    )
    with open_instance(home) as instance:
        # every shard's checks passed in the daemon's runs (ordered_docs' run in the publish run)
        problems = blocking_failures(instance, GATED_BY, names)
        assert [p for p in problems if p.partition is not None] == []
        result = (
            build_definitions(raising)
            .resolve_job_def("publish_curriculum")
            .execute_in_process(instance=instance, run_config=RUN_CONFIG, raise_on_error=False)
        )
        assert result.success
    manifest = json.loads((store / "training_ready" / "manifest.json").read_text())
    assert sorted(s["shard"] for s in manifest["input_shards"]) == names


def _started_run(instance: DagsterInstance, run_id: str, tags: dict[str, str]) -> None:
    instance.add_run(DagsterRun(job_name="raise_shard", run_id=run_id, tags=tags))
    instance.handle_run_event(
        run_id,
        DagsterEvent(event_type_value="PIPELINE_START", job_name="raise_shard", message="started"),
    )


def test_a_runner_cleans_up_only_after_its_own_home_on_a_shared_instance(
    pg_url: str, tmp_path: Path
) -> None:
    """Two Dagster homes (two machines, or two folders) on one PostgreSQL database: the runs a
    killed runner of home A left are marked failed by A's next runner, never by B's, whose lock
    says nothing about A's processes."""
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    for home in (home_a, home_b):
        write_instance_yaml(home, postgres=True)
    with open_instance(home_a) as a, open_instance(home_b) as b:
        _started_run(a, "left-by-a", runner_tags(a))
        _started_run(b, "running-in-b", runner_tags(b))
        assert runner_tags(a)[RUNNER_HOME_TAG] != runner_tags(b)[RUNNER_HOME_TAG]
        assert fail_abandoned_runs(b) == ["running-in-b"]
        assert b.get_run_by_id("left-by-a").status == DagsterRunStatus.STARTED
        assert fail_abandoned_runs(a) == ["left-by-a"]
        assert a.get_run_by_id("left-by-a").status == DagsterRunStatus.FAILURE
