"""The teacher as the values probe's judge: a real engine (the tiny random model) judges real
student completions; the judge, its prompt and its agreement with the cue judge are recorded."""

import json
from pathlib import Path

import polars as pl
import pytest

from raising_dagster.config import load_settings
from raising_dagster.probe.run import run_probe
from raising_dagster.prompts import load_prompt
from raising_dagster.teacher.vllm import VllmTeacher
from tests.probe_corpus import TINY, publish_synthetic
from tests.vllm.conftest import tiny_settings

pytest.importorskip("transformers", reason="the student probe needs the probe extra")


def test_teacher_judge_is_recorded_beside_the_cue_judge(
    tmp_path: Path, tiny_teacher: VllmTeacher, tiny_model: Path
) -> None:
    store = publish_synthetic(tmp_path / "store", first_person=True, n_docs=20)
    settings = load_settings(
        store_dir=store,
        teacher=tiny_settings(tiny_model).model_dump(),
        probe={**TINY, "budget_tokens": 4096, "samples_per_prompt": 1, "judge": "teacher"},
    )
    report = run_probe(settings, store, tmp_path / "probe", judge_teacher=tiny_teacher)

    judge = report["judge"]
    assert judge["judge"] == "teacher"
    assert judge["teacher"] == {
        "backend": "vllm",
        "model": tiny_teacher.model,
        "prompt_id": "probe/judge.v1",
        "prompt_sha": load_prompt("probe/judge.v1").sha,
    }
    completions = pl.read_parquet(tmp_path / "probe" / "completions.parquet")
    values = completions.filter(pl.col("probe") == "values")
    agreement = judge["agreement_with_cue_judge"]
    assert agreement["judged"] == values.height == 3 * 24  # every arm's value completions
    parsed = values["value_way_teacher"].drop_nulls()
    assert agreement["parsed"] == parsed.len()
    assert agreement["parsed"] + agreement["unparsed"] == agreement["judged"]
    assert completions.filter(pl.col("probe") == "persona")["value_way_teacher"].null_count() == (
        3 * 36
    )
    for arm in report["arms"].values():  # the cue judge's share stays beside the teacher's
        assert 0.0 <= arm["value_share_cue"] <= 1.0
        if parsed.len() == 0:
            assert arm["value_share"] is None  # no verdict: no share, never a guess
    assert json.loads((tmp_path / "probe" / "probe.json").read_text())["judge"] == judge
