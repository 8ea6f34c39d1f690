"""`dagster dev` for tests: started on 127.0.0.1 in its own process group (it does not stop on a
signal to its parent alone), answered over GraphQL, stopped with its whole group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import HONESTY_CODEX

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dagster_env(home: Path, store: Path, landing: Path, codex: Path = HONESTY_CODEX) -> dict:
    """The environment of `make ui`: the instance, the store, the landing folder, the codex."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RAISING_STORE_DIR": str(store),
        "RAISING_LANDING_DIR": str(landing),
        "RAISING_CODEX_PATH": str(codex),
        "GX_ANALYTICS_ENABLED": "False",
    }


@contextmanager
def dagster_dev(env: dict, log: Path, timeout_s: float = 180) -> Iterator[str]:
    """Run `dagster dev -w workspace.yaml` until the block ends; yields its URL. Its output goes
    to `log` (kept for a failing test to show)."""
    port = free_port()
    command = [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"dagster dev exited ({server.returncode}); see {log}")
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            raise TimeoutError(f"dagster dev did not answer within {timeout_s:.0f} s; see {log}")
        _wait_for_code_location(url, deadline)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def _wait_for_code_location(url: str, deadline: float) -> None:
    query = """{ workspaceOrError { ... on Workspace { locationEntries {
                 locationOrLoadError { __typename } } } } }"""
    while time.monotonic() < deadline:
        entries = graphql(url, query)["workspaceOrError"]["locationEntries"]
        loaded = [(e["locationOrLoadError"] or {}).get("__typename") for e in entries]
        if loaded and all(t == "RepositoryLocation" for t in loaded):
            return
        time.sleep(1)
    raise TimeoutError("the code location did not load")


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
    )
    response.raise_for_status()
    body = response.json()
    if "errors" in body:
        raise AssertionError(body["errors"])
    return body["data"]


REPOSITORY = {"repositoryLocationName": "raising_dagster", "repositoryName": "__repository__"}


def add_partitions(url: str, keys: list[str]) -> None:
    """Register shards as partitions of `raw_shards`, as the UI's "Add partition" does."""
    for key in keys:
        result = graphql(
            url,
            """mutation($repo: RepositorySelector!, $key: String!) {
                 addDynamicPartition(repositorySelector: $repo, partitionsDefName: "raw_shards",
                                     partitionKey: $key) { __typename } }""",
            {"repo": REPOSITORY, "key": key},
        )["addDynamicPartition"]
        assert result["__typename"] == "AddDynamicPartitionSuccess", result


def wait_for_backfill(url: str, backfill_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll a backfill until it is done; returns its status and runs."""
    deadline = time.monotonic() + timeout_s
    while True:
        backfill = graphql(
            url,
            """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                 ... on PartitionBackfill { status
                   runs(limit: 100) { runId status jobName } } } }""",
            {"id": backfill_id},
        )["partitionBackfillOrError"]
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            return backfill
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} still {backfill['status']}: {backfill}")
        time.sleep(2)


def latest_materialization(url: str, asset: str) -> dict[str, Any] | None:
    found = graphql(
        url,
        """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
             assetMaterializations(limit: 1) { runId metadataEntries { label
               ... on PathMetadataEntry { path } ... on IntMetadataEntry { intValue }
               ... on TextMetadataEntry { text } } } } } }""",
        {"key": {"path": [asset]}},
    )["assetOrError"]
    events = found.get("assetMaterializations") if found else None
    return events[0] if events else None
