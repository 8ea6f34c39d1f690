"""A real PostgreSQL server for the cluster tests, started once a session on 127.0.0.1."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from raising_dagster.instance import PG_URL_ENV
from tests.cluster.postgres import PostgresServer, throwaway_postgres, unavailable_reason


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with throwaway_postgres() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database, named by DAGSTER_PG_URL for this test."""
    url = postgres.create_database().replace("postgresql://", "postgresql+psycopg2://", 1)
    monkeypatch.setenv(PG_URL_ENV, url)
    return url


@pytest.fixture
def pg_home(tmp_path: Path, pg_url: str) -> Path:
    """A Dagster home whose dagster.yaml is the shipped Postgres one."""
    from raising_dagster.instance import prepare_home

    home = tmp_path / "dagster_home"
    assert prepare_home(home) is None
    return home
