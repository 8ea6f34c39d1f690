"""The whole pipeline with a real vLLM engine (the tiny random model) in experience mode: every
record says who wrote it and which model was tried; the runner reports the model's throughput."""

import json
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance

from raising_dagster.resources import RaisingResource
from raising_dagster.runner import run_pipeline
from tests.conftest import HONESTY_CODEX
from tests.vllm.conftest import TINY_LEN

pytestmark = pytest.mark.vllm


def test_experience_mode_through_dagster_with_a_real_engine(
    tmp_path: Path, landing: Path, tiny_model: Path
) -> None:
    config = tmp_path / "settings.yaml"
    teacher = {
        "backend": "vllm",
        "model": str(tiny_model),
        "dtype": "float32",
        "max_model_len": TINY_LEN,
        "max_attempts": 1,
    }
    config.write_text(json.dumps({"teacher": teacher}), encoding="utf-8")  # JSON is YAML
    store = tmp_path / "store"
    raising = RaisingResource(
        config_file=str(config),
        landing_dir=str(landing),
        store_dir=str(store),
        codex_path=str(HONESTY_CODEX),
    )
    with DagsterInstance.ephemeral() as instance:
        report = run_pipeline(raising, instance)
    assert report.published, report.failures
    records = pl.read_parquet(store / "training_ready" / "data" / "*.parquet")
    # the model was asked for every record; noise is rejected, so the template wrote them, and
    # each record says both
    assert set(records["tried_backend"]) == {"vllm"}
    assert set(records["tried_model"]) == {tiny_model.name}
    fallbacks = records.filter(pl.col("fallback_reason").is_not_null())
    assert set(fallbacks["teacher_backend"]) <= {"template"}
    accepted = records.filter(pl.col("fallback_reason").is_null())
    assert set(accepted["teacher_backend"]) <= {"vllm"}
    assert report.teacher["calls"] == records.height  # one try each
    assert report.teacher["tokens"] > 0 and report.teacher["tokens_per_s"] > 0
