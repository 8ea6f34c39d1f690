"""`make ui` for real: `dagster dev` on the demo's instance shows assets, runs and metadata."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import HONESTY_CODEX

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ui(tmp_path: Path, landing: Path) -> Iterator[tuple[str, Path]]:
    home, store = tmp_path / "home", tmp_path / "store"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RAISING_STORE_DIR": str(store),
        "RAISING_LANDING_DIR": str(landing),
        "RAISING_CODEX_PATH": str(HONESTY_CODEX),
    }
    subprocess.run(
        [
            str(BIN / "raising"),
            "run",
            "--landing",
            str(landing),
            "--out",
            str(store),
            "--codex",
            str(HONESTY_CODEX),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            pytest.fail("dagster dev did not answer within 120 s")
        yield url, store
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def _graphql(url: str, query: str) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.mark.slow
def test_ui_shows_the_assets_runs_and_published_metadata(ui: tuple[str, Path]) -> None:
    url, _ = ui
    nodes = _graphql(url, "{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
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
    runs = _graphql(url, "{ runsOrError { ... on Runs { results { jobName status } } } }")
    results = runs["runsOrError"]["results"]
    assert {r["status"] for r in results} == {"SUCCESS"}
    assert sorted(r["jobName"] for r in results) == [
        "publish_curriculum",
        "raise_shard",
        "raise_shard",
    ]
    published = _graphql(
        url,
        """{ assetOrError(assetKey: {path: ["training_ready_corpus"]}) { ... on Asset {
              assetMaterializations(limit: 1) { metadataEntries { label } } } } }""",
    )["assetOrError"]["assetMaterializations"][0]["metadataEntries"]
    assert {"records", "tokens", "stages", "manifest"} <= {e["label"] for e in published}
