"""`make ui` for real: `dagster dev` on the demo's instance shows assets, runs and metadata."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HONESTY_CODEX, raising_cli
from tests.dagster_dev import dagster_dev, dagster_env, graphql


@pytest.fixture
def ui(tmp_path: Path, landing: Path) -> Iterator[tuple[str, Path]]:
    home, store = tmp_path / "home", tmp_path / "store"
    env = dagster_env(home, store, landing)
    args = ("--landing", str(landing), "--out", str(store), "--codex", str(HONESTY_CODEX))
    done = raising_cli("run", *args, home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    with dagster_dev(env, tmp_path / "dagster_dev.log", timeout_s=120) as url:
        yield url, store


@pytest.mark.slow
def test_ui_shows_the_assets_runs_and_published_metadata(ui: tuple[str, Path]) -> None:
    url, _ = ui
    nodes = graphql(url, "{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    groups = {n["assetKey"]["path"][0]: n["groupName"] for n in nodes}
    assert groups == {
        "raw_docs": "raising",
        "first_person_docs": "raising",
        "experiential_docs": "raising",
        "social_docs": "raising",
        "scored_docs": "raising",
        "ordered_docs": "raising",
        "training_ready_corpus": "raising",
        "student_probe": "evaluation",
    }
    runs = graphql(url, "{ runsOrError { ... on Runs { results { jobName status } } } }")
    results = runs["runsOrError"]["results"]
    assert {r["status"] for r in results} == {"SUCCESS"}
    assert sorted(r["jobName"] for r in results) == [
        "publish_curriculum",
        "raise_shard",
        "raise_shard",
    ]
    published = graphql(
        url,
        """{ assetOrError(assetKey: {path: ["training_ready_corpus"]}) { ... on Asset {
              assetMaterializations(limit: 1) { metadataEntries { label } } } } }""",
    )["assetOrError"]["assetMaterializations"][0]["metadataEntries"]
    assert {"records", "tokens", "stages", "manifest"} <= {e["label"] for e in published}
