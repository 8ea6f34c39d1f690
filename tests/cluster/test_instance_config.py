"""The shipped instance configuration: which dagster.yaml a home gets, what it limits, and the
DAGSTER_PG_URL it refuses (no server needed)."""

import importlib.util
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.runs import SqliteRunStorage

from raising_dagster.instance import (
    PG_URL_ENV,
    POSTGRES_YAML,
    SQLITE_YAML,
    InstanceConfigError,
    prepare_home,
)
from raising_dagster.jobs import TEACHER_RUN_TAG, raise_shard_job


def test_a_home_gets_the_sqlite_instance_with_the_run_queue_and_teacher_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    home = tmp_path / "home"
    assert prepare_home(home) is None
    assert (home / "dagster.yaml").read_text() == SQLITE_YAML.read_text()
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert isinstance(instance.run_storage, SqliteRunStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        config = instance.get_concurrency_config()
        assert config.run_queue_config.max_concurrent_runs == 2
        assert config.run_queue_config.tag_concurrency_limits == [
            {"key": TEACHER_RUN_TAG, "limit": 2}
        ]
        assert config.pool_config.default_pool_limit == 2
        assert instance.event_log_storage.supports_global_concurrency_limits
        assert instance.run_monitoring_enabled
    assert raise_shard_job.tags[TEACHER_RUN_TAG] == "raise_shard"


def test_an_existing_dagster_yaml_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    assert prepare_home(home) is None
    monkeypatch.setenv(PG_URL_ENV, "postgresql+psycopg2://u@127.0.0.1:5432/d")
    warning = prepare_home(home)
    assert warning is not None and "stays on SQLite" in warning
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_dagster_pg_url_selects_postgres_and_a_bare_scheme_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PG_URL_ENV, "postgresql+psycopg2://u:p@127.0.0.1:5432/d")
    assert prepare_home(tmp_path / "pg") is None
    assert (tmp_path / "pg" / "dagster.yaml").read_text() == POSTGRES_YAML.read_text()
    monkeypatch.setenv(PG_URL_ENV, "mysql://u@h/d")
    with pytest.raises(InstanceConfigError, match=r"postgresql\+psycopg2://"):
        prepare_home(tmp_path / "other")
    if importlib.util.find_spec("psycopg") is None:
        monkeypatch.setenv(PG_URL_ENV, "postgresql://u@h/d")
        with pytest.raises(InstanceConfigError, match="psycopg 3"):
            prepare_home(tmp_path / "bare")
    assert not (tmp_path / "other").exists() and not (tmp_path / "bare").exists()
