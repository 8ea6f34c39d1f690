"""The vllm backend against a real CPU engine on a tiny random model (outputs are noise: the
tests assert structure — counts, order, seeds, limits, fallbacks — never wording)."""

import json
from pathlib import Path

import pytest

from raising_dagster.config import load_identity
from raising_dagster.teacher.base import RewriteRequest, ValueRef
from raising_dagster.teacher.cache import CachedTeacher, GenerationCache
from raising_dagster.teacher.llm import Call
from raising_dagster.teacher.validate import dialogue_schema
from raising_dagster.teacher.vllm import VllmTeacher
from tests.vllm.conftest import TINY_LEN, ChatCounter, tiny_settings

pytestmark = pytest.mark.vllm
IDENTITY = load_identity()
TEXT = (
    "Once upon a time a fox saw grapes hanging high on a vine. He jumped and jumped but could "
    "not reach them. At last he walked away and said they were sour anyway."
)


def calls(n: int, max_tokens: int = 8, seed: int = 0, **sampling: object) -> list[Call]:
    messages = [{"role": "user", "content": "Tell me about the fox and the grapes."}]
    return [
        Call(messages, {"ignore_eos": True, **sampling}, seed + i, max_tokens + i) for i in range(n)
    ]


def requests(n: int, text: str = TEXT) -> list[RewriteRequest]:
    values = (ValueRef("honesty", "telling the truth"),)
    return [RewriteRequest(f"d{i}", text, "fable", "Fox", values, 100 + i, text) for i in range(n)]


def sharing(teacher: VllmTeacher, model: Path, **overrides: object) -> VllmTeacher:
    """Another teacher on the same running engine."""
    return VllmTeacher(tiny_settings(model, **overrides), IDENTITY, engine=teacher.engine())


def test_one_batched_call_in_request_order(
    tiny_teacher: VllmTeacher, chat_counter: ChatCounter
) -> None:
    out = tiny_teacher._generate(calls(6))
    assert chat_counter.batches == [6]
    assert [c.n_tokens for c in out] == [8, 9, 10, 11, 12, 13]  # max_tokens + i, in order
    assert {c.finish_reason for c in out} == {"length"}


def test_seeds_make_outputs_reproducible(tiny_teacher: VllmTeacher) -> None:
    first = [c.text for c in tiny_teacher._generate(calls(4, max_tokens=16, temperature=1.0))]
    again = [c.text for c in tiny_teacher._generate(calls(4, max_tokens=16, temperature=1.0))]
    other = [c.text for c in tiny_teacher._generate(calls(4, 16, seed=50, temperature=1.0))]
    assert first == again
    assert first != other and len(set(first)) == 4


def test_stop_string_ends_generation(tiny_teacher: VllmTeacher) -> None:
    (free,) = tiny_teacher._generate(calls(1, max_tokens=24, temperature=1.0))
    stop = free.text[6:9]
    assert len(stop) == 3
    (stopped,) = tiny_teacher._generate(calls(1, max_tokens=24, temperature=1.0, stop=[stop]))
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[: free.text.index(stop)]


def test_noise_is_rejected_retried_and_falls_back(
    tiny_teacher: VllmTeacher, chat_counter: ChatCounter
) -> None:
    out = tiny_teacher.rewrite("first_person", requests(3))
    assert chat_counter.batches == [3, 3]  # one batch per attempt, max_attempts 2
    for rewrite in out:
        assert rewrite.lineage.attempts == 2 and rewrite.lineage.fallback_reason is not None
        assert rewrite.lineage.prompt_id == "first_person/template.v2"
        assert rewrite.text.startswith("Today I") or "I" in rewrite.text.split()
    assert tiny_teacher.stats.fallbacks >= 3


def test_structured_dialogue_is_valid_json(tiny_teacher: VllmTeacher, tiny_model: Path) -> None:
    teacher = sharing(tiny_teacher, tiny_model, structured_dialogue=True)
    schema = dialogue_schema("Grandpa Amos")  # bounded below so that noise can finish it
    schema["properties"]["turns"]["maxItems"] = 3
    schema["properties"]["turns"]["items"]["properties"]["text"]["maxLength"] = 12
    messages = [{"role": "user", "content": "Talk about the fox."}]
    out = teacher._generate(
        [Call(messages, {"temperature": 1.0}, s, 200, schema) for s in range(3)]
    )
    for completion in out:  # noise never writes this unless the grammar constrains it
        assert completion.text.startswith("{") and '"turns"' in completion.text
        if completion.finish_reason == "stop":
            turns = json.loads(completion.text)["turns"]
            assert 2 <= len(turns) <= 3 and {t["speaker"] for t in turns} <= {"Grandpa Amos", "I"}


def test_long_document_is_windowed_to_fit_the_context(
    tiny_teacher: VllmTeacher, tiny_model: Path, chat_counter: ChatCounter
) -> None:
    teacher = sharing(tiny_teacher, tiny_model, max_attempts=1)
    long_text = " ".join([TEXT] * 40)
    assert teacher._count_tokens(long_text) > TINY_LEN
    (out,) = teacher.rewrite("first_person", requests(1, long_text))
    assert chat_counter.batches[0] > 1  # several windows of one document, in one batch
    assert out.lineage.attempts == 1 and out.lineage.fallback_reason is not None


def test_cached_rerun_makes_no_engine_call(
    tiny_teacher: VllmTeacher, tiny_model: Path, chat_counter: ChatCounter, tmp_path: Path
) -> None:
    inner = sharing(tiny_teacher, tiny_model)
    first = CachedTeacher(inner, GenerationCache(tmp_path)).rewrite("social", requests(4))
    engine_calls = len(chat_counter.batches)
    assert engine_calls >= 1
    rerun = CachedTeacher(inner, GenerationCache(tmp_path))
    second = rerun.rewrite("social", requests(4))
    assert len(chat_counter.batches) == engine_calls
    assert (rerun.hits, rerun.misses) == (4, 0)
    assert [o.text for o in second] == [o.text for o in first]
    assert [(o.lineage.attempts, o.lineage.fallback_reason) for o in second] == [
        (o.lineage.attempts, o.lineage.fallback_reason) for o in first
    ]


def test_experience_mode_continues_the_started_answer_on_the_engine(
    tiny_teacher: VllmTeacher, tiny_model: Path, chat_counter: ChatCounter
) -> None:
    teacher = sharing(tiny_teacher, tiny_model, mode="experience", max_attempts=1)
    framed = f'Today I\'m reading a fable "Fox". Let\'s start: "{TEXT}"'
    values = (ValueRef("honesty", "telling the truth"),)
    batch = [RewriteRequest(f"d{i}", framed, "fable", "Fox", values, i, TEXT) for i in range(3)]
    out = teacher.rewrite("experiential", batch)
    assert chat_counter.batches == [3]  # one batched chat, every call continuing a prefill
    assert teacher.stats.generated_tokens <= 3 * 70  # experience.v1: at most 70 tokens each
    for rewrite in out:  # noise is rejected: the template writes the record, saying why
        assert rewrite.text.startswith(framed + "\n\n")
        assert rewrite.lineage.tried_backend == "vllm" and rewrite.lineage.attempts == 1
        if rewrite.lineage.fallback_reason is None:
            assert rewrite.lineage.prompt_id == "experiential/experience.v1"
        else:
            assert rewrite.lineage.teacher_backend == "template"
    # the engine continued the assistant message: the prompt ends with the prefill, no new turn
    engine = teacher.engine()
    conversation = [
        {"role": "user", "content": "Tell me about the fox."},
        {"role": "assistant", "content": "Reading this, I noticed"},
    ]
    prompt = engine.get_tokenizer().apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=False, continue_final_message=True
    )
    assert prompt.rstrip().endswith("Reading this, I noticed")
