"""`raising run` as a user runs it: a subprocess, a persistent Dagster home, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.conftest import HONESTY_CODEX

RAISING = str(Path(sys.executable).parent / "raising")


def _run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run(
        [RAISING, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_run_publishes_and_summarizes(tmp_path: Path, landing: Path) -> None:
    (landing / "gamma.jsonl").write_text('{"text": "Be kind."}\n{"text": 3}\n', encoding="utf-8")
    out = tmp_path / "out"
    result = _run(
        "run",
        "--landing",
        str(landing),
        "--out",
        str(out),
        "--codex",
        str(HONESTY_CODEX),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "training_ready" / "manifest.json").read_text())
    assert f"Published {manifest['records']} records" in result.stdout
    assert manifest["records"] > 7  # 7 experiential records plus dialogues for a share of them
    assert "--- experiential rendering" in result.stdout
    assert "--- social rendering" in result.stdout
    assert "Quarantine (1 records)" in result.stdout
    quarantine = pl.read_parquet(out / "quarantine" / "gamma.jsonl.parquet")
    assert quarantine["reason"].to_list() == ["wrong_type"]
    # the runs are in the persistent instance, for `make ui`
    assert any((tmp_path / "home").rglob("*.db"))


def test_invalid_codex_is_a_clear_error(tmp_path: Path, landing: Path) -> None:
    codex = tmp_path / "codex.yaml"
    codex.write_text("version: 1\ndefault_value: missing\nvalues: []\n", encoding="utf-8")
    result = _run(
        "run",
        "--landing",
        str(landing),
        "--out",
        str(tmp_path / "out"),
        "--codex",
        str(codex),
        home=tmp_path / "home",
    )
    assert result.returncode != 0
    assert "invalid settings" in result.stderr and "values" in result.stderr


def test_synth_writes_the_requested_documents(tmp_path: Path) -> None:
    result = _run(
        "synth",
        "--docs",
        "25",
        "--shards",
        "3",
        "--out",
        str(tmp_path / "s"),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    frames = [pl.read_ndjson(p) for p in sorted((tmp_path / "s").glob("*.jsonl"))]
    assert [f.height for f in frames] == [9, 8, 8]
    assert pl.concat(frames)["id"].n_unique() == 25
