"""Fixtures of the Dagster tests: a throwaway instance, and the settings resource over the small
`landing` corpus with the codex it can carry."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from raising_dagster.resources import RaisingResource
from tests.conftest import HONESTY_CODEX


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def raising(tmp_path: Path, landing: Path) -> RaisingResource:
    return RaisingResource(
        landing_dir=str(landing), store_dir=str(tmp_path / "store"), codex_path=str(HONESTY_CODEX)
    )
