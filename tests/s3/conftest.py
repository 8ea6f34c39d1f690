"""A real S3-compatible server for the `s3` tests: moto's standalone server (Flask/werkzeug) on
127.0.0.1, one per test session, a fresh bucket per test; credentials and endpoint only through
the standard AWS environment variables, as a user sets them."""

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from raising_dagster.storage import S3Options, S3Path


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment a user of an S3-compatible store sets: endpoint, keys, region."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "raising-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "raising-test-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return s3_endpoint


@pytest.fixture
def bucket(s3_env: str) -> S3Path:
    """A new, empty bucket on the server, as an S3Path (options from the environment)."""
    name = f"raising-{uuid.uuid4().hex[:12]}"
    root = S3Path(name, "", S3Options.from_env())
    root.client.create_bucket(Bucket=name)
    return root


@pytest.fixture
def work_config(tmp_path: Path) -> Path:
    """A settings file that keeps the local work folder (staging, spill, lock) under tmp_path."""
    config = tmp_path / "settings.yaml"
    config.write_text(f"storage:\n  work_dir: {tmp_path / 'work'}\n", encoding="utf-8")
    return config


def keys(root: S3Path) -> list[str]:
    """Every object key under a prefix, relative to it."""
    return sorted(str(item.relative_to(root)) for item in root.walk_files())
