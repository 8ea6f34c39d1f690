"""`raising run --parallel N`: shard runs in worker processes on one Dagster instance."""

from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef

from raising_dagster.definitions import build_definitions
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.runner import _raise_in_parallel, run_pipeline
from raising_dagster.shard_workers import start_shard_workers
from tests.conftest import HONESTY_CODEX


@pytest.fixture
def instance(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


@pytest.mark.slow
def test_a_failing_shard_run_in_a_worker_is_reported_and_the_others_finish(
    tmp_path: Path, landing: Path, instance: DagsterInstance
) -> None:
    raising = RaisingResource(landing_dir=str(landing), store_dir=str(tmp_path / "store"))
    keys = ["alpha.jsonl", "gone.jsonl", "beta.jsonl"]  # gone.jsonl: no such shard file
    instance.add_dynamic_partitions(raw_shards.name, keys)
    defs = build_definitions(raising)
    outcomes = {o.key: o for o in _raise_in_parallel(raising, defs, instance, keys, 3)}
    assert set(outcomes) == set(keys)
    assert outcomes["alpha.jsonl"].success and outcomes["beta.jsonl"].success
    failed = outcomes["gone.jsonl"]
    assert not failed.success and failed.report.errored
    assert any("has no shard file" in f for f in failed.report.failures), failed.report.failures
    statuses = {r.tags["dagster/partition"]: r.status for r in instance.get_runs()}
    assert statuses == {
        "alpha.jsonl": DagsterRunStatus.SUCCESS,
        "beta.jsonl": DagsterRunStatus.SUCCESS,
        "gone.jsonl": DagsterRunStatus.FAILURE,
    }


@pytest.mark.slow
def test_parallel_pipeline_reports_runs_in_shard_order_and_publishes(
    tmp_path: Path, landing: Path, instance: DagsterInstance
) -> None:
    raising = RaisingResource(
        landing_dir=str(landing), store_dir=str(tmp_path / "store"), codex_path=str(HONESTY_CODEX)
    )
    lines: list[str] = []
    workers = start_shard_workers(1)  # started early, as `raising run` does
    report = run_pipeline(raising, instance, progress=lines.append, parallel=2, workers=workers)
    assert report.published and report.failures == []
    with pytest.raises(RuntimeError, match="shutdown"):  # run_pipeline shut the workers down
        workers.submit(print)
    runs = {r.run_id: r for r in instance.get_runs()}
    assert [runs[i].tags.get("dagster/partition") for i in report.run_ids] == [
        "alpha.jsonl",
        "beta.jsonl",
        None,  # the curriculum
    ]
    assert sum(line.startswith("raise_shard ") for line in lines) == 2
    assert (tmp_path / "store" / "training_ready" / "manifest.json").is_file()


def test_parallel_must_be_positive(tmp_path: Path, landing: Path) -> None:
    raising = RaisingResource(landing_dir=str(landing), store_dir=str(tmp_path / "store"))
    with DagsterInstance.ephemeral() as instance, pytest.raises(ValueError, match="at least 1"):
        run_pipeline(raising, instance, parallel=0)


def test_workers_started_early_are_shut_down_when_no_shard_is_raised(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    empty = tmp_path / "landing"
    empty.mkdir()
    raising = RaisingResource(landing_dir=str(empty), store_dir=str(tmp_path / "store"))
    workers = start_shard_workers(1)
    report = run_pipeline(raising, instance, parallel=2, workers=workers)
    assert report.failures == [f"no shards found in {empty}"]
    with pytest.raises(RuntimeError, match="shutdown"):  # unused, and still shut down
        workers.submit(print)
