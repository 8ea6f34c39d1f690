"""The teacher LLM as the values probe's judge (optional; the cue judge is the default).

Asks the configured LLM teacher (`vllm` or `openai`) one yes/no question per completion with the
versioned prompt `prompts/probe/judge.v1`, in one batched generation; an answer that does not
start with yes or no is recorded as unparsed, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raising_dagster.config import RaisingSettings
from raising_dagster.prompts import load_prompt
from raising_dagster.teacher.llm import SAMPLING_KEYS, Call, LlmTeacher, fence

_TAG = re.compile(r"(?i)<(\s*/?\s*continuation\b[^>]*)>")
_ANSWER = re.compile(r"(?i)^\W*(yes|no)\b")


@dataclass(frozen=True)
class JudgeItem:
    """One completion to judge: the choice prompt, the value and the student's continuation."""

    setup: str
    value: str
    description: str
    continuation: str


@dataclass(frozen=True)
class TeacherVerdicts:
    """The judge's answers (None: unparsed), and what judged."""

    verdicts: list[bool | None]
    answers: list[str]
    backend: str
    model: str
    prompt_id: str
    prompt_sha: str


def parse_answer(text: str) -> bool | None:
    """True for a yes, False for a no, None for anything else."""
    match = _ANSWER.match(text)
    return None if match is None else match[1].lower() == "yes"


def judge_messages(prompt_id: str, item: JudgeItem) -> list[dict[str, str]]:
    """The chat messages asking the judge about one completion (the continuation fenced)."""
    continuation = _TAG.sub(r"&lt;\1&gt;", fence(item.continuation))
    return load_prompt(prompt_id).render_chat(
        value=item.value,
        description=item.description,
        setup=item.setup,
        continuation=continuation,
    )


def build_judge(settings: RaisingSettings) -> LlmTeacher:
    """The configured LLM teacher, to serve as the judge."""
    backend = settings.teacher.backend
    if backend == "vllm":
        from raising_dagster.teacher.vllm import VllmTeacher

        return VllmTeacher(settings.teacher, settings.identity, pooled=True)
    if backend == "openai":
        from raising_dagster.teacher.openai import OpenAITeacher

        return OpenAITeacher(settings.teacher, settings.identity)
    raise ValueError(
        f"probe.judge is teacher but teacher.backend is {backend!r}: set it to vllm or openai"
    )


def teacher_verdicts(
    teacher: LlmTeacher, prompt_id: str, items: Sequence[JudgeItem], seed: int = 0
) -> TeacherVerdicts:
    """Ask the teacher about every item in one batched generation."""
    prompt = load_prompt(prompt_id)
    sampling: dict[str, Any] = {
        k: prompt.sampling[k] for k in SAMPLING_KEYS if k in prompt.sampling
    }
    max_tokens = int(prompt.sampling.get("max_tokens", 4))
    calls = [
        Call(judge_messages(prompt_id, item), sampling, seed + index, max_tokens)
        for index, item in enumerate(items)
    ]
    # `_generate` is the one hook every LLM backend implements: a batched chat generation.
    completions = teacher._generate(calls)
    answers = [c.text if c.error is None else f"error: {c.error}" for c in completions]
    return TeacherVerdicts(
        verdicts=[parse_answer(a) for a in answers],
        answers=answers,
        backend=teacher.backend,
        model=teacher.model,
        prompt_id=prompt_id,
        prompt_sha=prompt.sha,
    )


def agreement(cue: Sequence[bool], judge: Sequence[bool | None]) -> dict[str, Any]:
    """How often the teacher's parsed verdicts agree with the cue judge, and Cohen's kappa."""
    pairs = [(c, j) for c, j in zip(cue, judge, strict=True) if j is not None]
    n = len(pairs)
    result: dict[str, Any] = {"judged": len(cue), "parsed": n, "unparsed": len(cue) - n}
    if not n:
        return {**result, "agreement": None, "cohen_kappa": None}
    observed = sum(c == j for c, j in pairs) / n
    cue_yes = sum(c for c, _ in pairs) / n
    judge_yes = sum(bool(j) for _, j in pairs) / n
    expected = cue_yes * judge_yes + (1 - cue_yes) * (1 - judge_yes)
    kappa = None if expected == 1 else (observed - expected) / (1 - expected)
    return {**result, "agreement": observed, "cohen_kappa": kappa}
