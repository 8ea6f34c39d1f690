"""What the LLM backends share: prompt rendering, validation, retries, fallback, in both modes.

- `mode: experience` (default): the document stays verbatim in the template's frame; the model
  writes one short piece around it (the stage's slot: a reflection, the "I"'s closing turn, the
  opening), its answer started by the prompt's `prefill` block, cut at its last full sentence and
  validated (validate.validate_piece). The accepted piece fills the template's slot.
- `mode: rewrite`: the model rewrites the whole document (or each context window of a long one),
  validated as a whole (validate.validate). For strong models.

A rejected output is retried with a new seed up to `max_attempts`, then the template teacher writes
the record and its lineage says so. A backend subclasses `LlmTeacher` and writes one method,
`_generate(calls) -> completions` (one batched generation, outputs in call order), and may refine
`_count_tokens`.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from raising_dagster.config import IdentityCard, TeacherSettings, model_sha, sha256_hex
from raising_dagster.prompts import Prompt, load_prompt
from raising_dagster.stages.tasks import TASKS
from raising_dagster.stages.tasks.base import excerpt, one_line
from raising_dagster.stages.tasks.social import choose_person, content_chunks
from raising_dagster.teacher.base import Lineage, Rewrite, RewriteRequest, Stage
from raising_dagster.teacher.template import TemplateTeacher
from raising_dagster.teacher.validate import (
    Limits,
    dialogue_schema,
    finish_piece,
    grounding,
    render_turns,
    validate,
    validate_piece,
)

# Sampling keys passed to the engine; anything else in a prompt's YAML is ignored by the backends.
SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "min_tokens",
)
_MESSAGE_OVERHEAD = 8  # tokens a chat template adds per message (role markers), an upper bound
_MIN_WINDOW = 32
_DELIMITER_TAG = re.compile(r"(?i)<(\s*/?\s*document\b[^>]*)>")
_SPECIAL_TOKEN = re.compile(r"<\|([^|<>]{0,40})\|>")


def fence(text: str) -> str:
    """Text from the data made safe inside a prompt: any tag spelling `document` and any chat
    special token (`<|...|>`) is HTML-escaped (`&lt;...&gt;`), so the data cannot close its
    delimiter or open a new chat turn."""
    text = _DELIMITER_TAG.sub(r"&lt;\1&gt;", text)
    return _SPECIAL_TOKEN.sub(r"&lt;|\1|&gt;", text)


def in_share(doc_id: str, share: float) -> bool:
    """Whether a document falls in a seeded share of the corpus (the same in every stage)."""
    return share >= 1.0 or int(sha256_hex(f"llm_share:{doc_id}")[:8], 16) < share * 2**32


def retry_seed(seed: int, window: int, attempt: int) -> int:
    """The seed of one try: the request's own seed first, then derived, stable values."""
    if window == 0 and attempt == 1:
        return seed
    return int(sha256_hex(f"{seed}:{window}:{attempt}")[:8], 16)


@dataclass(frozen=True, slots=True)
class Call:
    """One chat generation for a backend; with a `prefill` the model continues that started
    answer (a final assistant message) instead of starting its own."""

    messages: list[dict[str, str]]
    sampling: dict[str, Any]
    seed: int
    max_tokens: int
    json_schema: dict[str, Any] | None = None
    prefill: str | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """A backend's answer to one call; `error` names a failed call (e.g. `http_500`). With a
    prefill, `text` is the continuation only."""

    text: str = ""
    finish_reason: str | None = None
    n_tokens: int = 0
    error: str | None = None


@dataclass
class TeacherStats:
    """Counters over the life of a teacher."""

    calls: int = 0
    generated_tokens: int = 0
    accepted_tokens: int = 0
    retries: int = 0
    fallbacks: int = 0
    windows: int = 0
    generation_s: float = 0.0  # wall time spent in the backend's generation
    rejections: dict[str, int] = field(default_factory=dict)


@dataclass
class _Job:
    """One generation a request needs: a window of its document (rewrite mode) or its piece."""

    request: int
    window: int
    text: str
    count: int = 1
    output: str | None = None
    reason: str | None = None
    attempts: int = 0
    grounding: int | None = None


Progress = Callable[[int, int], None]  # (calls answered, generated tokens) after each batch


class LlmTeacher:
    """Base of the LLM teachers: renders the stage's chat prompt per document, generates a whole
    batch at once, validates each output and retries the rejected ones with a new seed up to
    `max_attempts`, then falls back to the template backend."""

    backend = "llm"

    def __init__(self, settings: TeacherSettings, identity: IdentityCard, model: str) -> None:
        self.settings = settings
        self.identity = identity
        self.model = model
        self.model_revision = settings.model_revision or ""
        self.stats = TeacherStats()
        self.progress: Progress | None = None
        self._template = TemplateTeacher(identity)
        self._limits = Limits(
            min_ratio=settings.min_length_ratio,
            max_ratio=settings.max_length_ratio,
            min_grounding=settings.min_grounding,
        )

    # --- backend hooks -------------------------------------------------------------------------
    def _generate(self, calls: Sequence[Call]) -> list[Completion]:
        raise NotImplementedError

    def _count_tokens(self, text: str) -> int:
        """Tokens of a text; a conservative estimate (3 characters a token) unless overridden."""
        return math.ceil(len(text) / 3)

    def close(self) -> None:
        return None

    # --- the Teacher contract ------------------------------------------------------------------
    def prompt(self, stage: Stage) -> Prompt:
        return load_prompt(self.settings.prompt_id(stage))

    def prompt_sha(self, stage: Stage) -> str:
        """Hash of the stage's LLM prompt, the identity card and (experience mode) the template
        that frames the model's text."""
        parts = [self.prompt(stage).sha, model_sha(self.identity)]
        if self.settings.mode == "experience":
            parts.append(self._template.prompt_sha(stage))
        return sha256_hex(":".join(parts))

    def signature(self, stage: Stage) -> str:
        """Hash of the settings beyond the prompt that shape this stage's outputs (cache key)."""
        s = self.settings
        shaping = {
            "mode": s.mode,
            "llm_stage": s.uses_llm(stage),
            "prefill": s.prefill,
            "max_model_len": s.max_model_len,
            "max_attempts": s.max_attempts,
            "structured": s.structured_dialogue and stage == "social",
            "limits": [s.min_length_ratio, s.max_length_ratio, s.output_ratio, s.min_grounding],
        }
        return sha256_hex(json.dumps(shaping, sort_keys=True))

    def sampling_json(self, stage: Stage) -> str:
        sampling = dict(self.prompt(stage).sampling)
        if stage == "social" and self.settings.structured_dialogue and self._rewriting:
            sampling["structured"] = "json_turns"
        return json.dumps(sampling, sort_keys=True)

    @property
    def _rewriting(self) -> bool:
        return self.settings.mode == "rewrite"

    def rewrite(self, stage: Stage, requests: Sequence[RewriteRequest]) -> list[Rewrite]:
        """LLM rewrites, except where the template teacher writes the record, saying why: a stage
        the model does not write in experience mode, safety-flagged documents in the experiential
        stage (recontextualized by a fixed template, never by a model) and documents outside
        `llm_share`."""
        routed = {i: self._template_reason(stage, r) for i, r in enumerate(requests)}
        to_llm = [r for i, r in enumerate(requests) if routed[i] is None]
        from_llm = iter(self._rewrite_llm(stage, to_llm) if to_llm else [])
        out = []
        for i, request in enumerate(requests):
            reason = routed[i]
            if reason is None:
                out.append(next(from_llm))
                continue
            text, prompt_id = self._template.render(stage, request)
            why = None if reason == "template_stage" else reason
            lineage = self._template.lineage(
                prompt_id, request.seed, attempts=0, fallback_reason=why
            )
            out.append(Rewrite(text, lineage))
        return out

    def _template_reason(self, stage: Stage, request: RewriteRequest) -> str | None:
        if not self.settings.uses_llm(stage):
            return "template_stage"
        if stage == "experiential" and request.safety_flag:
            return f"safety_flag:{request.safety_flag}"
        if not in_share(request.doc_id, self.settings.llm_share):
            return "outside_llm_share"
        return None

    def _rewrite_llm(self, stage: Stage, requests: Sequence[RewriteRequest]) -> list[Rewrite]:
        prompt = self.prompt(stage)
        if self._rewriting:
            jobs = [
                job for i, r in enumerate(requests) for job in self._windows(stage, prompt, i, r)
            ]
        else:
            jobs = [_Job(i, 0, TASKS[stage].source(r)) for i, r in enumerate(requests)]
        self.stats.windows += len(jobs)
        pending = list(jobs)
        for attempt in range(1, self.settings.max_attempts + 1):
            if not pending:
                break
            if attempt > 1:
                self.stats.retries += len(pending)
            calls = [self._call(stage, prompt, requests[j.request], j, attempt) for j in pending]
            started = time.monotonic()
            completions = self._generate(calls)
            self.stats.generation_s += time.monotonic() - started
            self.stats.calls += len(calls)
            if len(completions) != len(calls):
                raise RuntimeError(f"backend gave {len(completions)} outputs for {len(calls)}")
            for job, call, completion in zip(pending, calls, completions, strict=True):
                self.stats.generated_tokens += completion.n_tokens
                job.attempts = attempt
                self._accept(stage, requests[job.request], job, call, completion)
                if job.reason is None:
                    self.stats.accepted_tokens += completion.n_tokens
                else:
                    self.stats.rejections[job.reason] = self.stats.rejections.get(job.reason, 0) + 1
            if self.progress is not None:
                self.progress(len(calls), sum(c.n_tokens for c in completions))
            pending = [j for j in pending if j.reason is not None]
        return self._assemble(stage, prompt, requests, jobs)

    # --- steps ---------------------------------------------------------------------------------
    def _context(
        self, stage: Stage, request: RewriteRequest, document: str, window: Any, attempt: int
    ) -> dict[str, Any]:
        """What the stage's LLM prompt renders from; every field from the data is fenced."""
        title = one_line(request.title)
        return {
            "identity": self.identity.model_dump(),
            "person": choose_person(request.kind, request.seed, self.identity).model_dump(),
            "kind": request.kind,
            "title": fence(title) if title else None,
            "values": [{"name": v.name, "description": v.description} for v in request.values],
            "structured": self.settings.structured_dialogue and stage == "social",
            "document": fence(document),
            "window": window,
            "variant": request.seed,
            "attempt": attempt,
        }

    def _messages(self, context: dict[str, Any], prompt: Prompt) -> list[dict[str, str]]:
        return prompt.render_chat(**context)

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return sum(self._count_tokens(m["content"]) + _MESSAGE_OVERHEAD for m in messages)

    def _windows(
        self, stage: Stage, prompt: Prompt, index: int, request: RewriteRequest
    ) -> list[_Job]:
        """Rewrite mode: one job per context window of the document (one for most)."""
        source = TASKS[stage].source(request)
        probe = self._context(stage, request, "", {"index": 99, "count": 99}, 1)
        overhead = self._prompt_tokens(self._messages(probe, prompt))
        room = self.settings.max_model_len - overhead
        max_tokens = int(prompt.sampling.get("max_tokens", 512))
        budget = room - max_tokens if room - max_tokens >= _MIN_WINDOW else room // 2
        if budget < _MIN_WINDOW:
            raise ValueError(
                f"max_model_len {self.settings.max_model_len} leaves no room for a document "
                f"in prompt {prompt.id} ({overhead} tokens)"
            )
        if self._count_tokens(source) <= budget:
            return [_Job(index, 0, source)]
        windows = self._split(source, budget)
        return [_Job(index, w, text, len(windows)) for w, text in enumerate(windows)]

    def _split(self, text: str, budget: int) -> list[str]:
        """Consecutive windows of whole sentences (words for an overlong sentence) within budget."""
        pieces: list[str] = []
        for sentence in content_chunks(text, max_words=1):
            if self._count_tokens(sentence) <= budget:
                pieces.append(sentence)
                continue
            words, current = sentence.split(), []
            for word in words:
                if current and self._count_tokens(" ".join([*current, word])) > budget:
                    pieces.append(" ".join(current))
                    current = []
                current.append(word)
            pieces.append(" ".join(current))
        windows: list[str] = []
        current_text = ""
        for piece in pieces:
            joined = f"{current_text} {piece}".strip()
            if current_text and self._count_tokens(joined) > budget:
                windows.append(current_text)
                joined = piece
            current_text = joined
        if current_text:
            windows.append(current_text)
        return windows

    def _call(
        self, stage: Stage, prompt: Prompt, request: RewriteRequest, job: _Job, attempt: int
    ) -> Call:
        window = None if job.count <= 1 else {"index": job.window + 1, "count": job.count}
        document = job.text if self._rewriting else excerpt(job.text)
        context = self._context(stage, request, document, window, attempt)
        messages = self._messages(context, prompt)
        prefill = None if self._rewriting else prompt.render_prefill(**context)
        room = self.settings.max_model_len - self._prompt_tokens(messages)
        cap = int(prompt.sampling.get("max_tokens", 512))
        if self._rewriting:
            proportional = int(self.settings.output_ratio * self._count_tokens(job.text)) + 64
            cap = min(cap, proportional)
        max_tokens = max(1, min(cap, room))
        schema = None
        if stage == "social" and self.settings.structured_dialogue and self._rewriting:
            schema = dialogue_schema(choose_person(request.kind, request.seed, self.identity).name)
        sampling = {k: prompt.sampling[k] for k in SAMPLING_KEYS if k in prompt.sampling}
        seed = retry_seed(request.seed, job.window, attempt)
        return Call(messages, sampling, seed, max_tokens, schema, prefill)

    def _accept(
        self,
        stage: Stage,
        request: RewriteRequest,
        job: _Job,
        call: Call,
        completion: Completion,
    ) -> None:
        """Set the job's output, or the reason it is rejected."""
        job.output, job.reason = None, None
        if completion.error is not None:
            job.reason = f"error:{completion.error}"
            return
        system = "\n".join(m["content"] for m in call.messages if m["role"] == "system")
        if call.prefill is not None:
            piece = finish_piece(call.prefill, completion.text)
            job.reason = validate_piece(
                stage,
                piece,
                prefill=call.prefill,
                source=job.text,
                values=request.values,
                identity=self.identity,
                instructions=system,
                limits=self._limits,
            )
            if job.reason is None and piece is not None:
                job.output = piece
                job.grounding = grounding(piece[len(call.prefill) :], job.text, request.values)
            return
        if completion.finish_reason == "length":
            job.reason = "truncated"
            return
        text = completion.text.strip()
        if call.json_schema is not None:
            person = choose_person(request.kind, request.seed, self.identity)
            rendered = render_turns(text, person.name)
            if rendered is None:
                job.reason = "malformed_json"
                return
            text = rendered
        job.reason = validate(
            stage,
            text,
            source=job.text,
            identity=self.identity,
            instructions=system,
            limits=self._limits,
        )
        job.output = text if job.reason is None else None

    def _assemble(
        self,
        stage: Stage,
        prompt: Prompt,
        requests: Sequence[RewriteRequest],
        jobs: list[_Job],
    ) -> list[Rewrite]:
        by_request: dict[int, list[_Job]] = {}
        for job in jobs:
            by_request.setdefault(job.request, []).append(job)
        tried = {"tried_backend": self.backend, "tried_model": self.model}
        sha, sampling = self.prompt_sha(stage), self.sampling_json(stage)
        joiner = "\n" if stage == "social" else "\n\n"
        out: list[Rewrite] = []
        for i, request in enumerate(requests):
            parts = sorted(by_request[i], key=lambda j: j.window)
            attempts = max(j.attempts for j in parts)
            failed = next((j for j in parts if j.output is None), None)
            if failed is not None:
                self.stats.fallbacks += 1
                text, template_id = self._template.render(stage, request)
                lineage = self._template.lineage(
                    template_id,
                    request.seed,
                    attempts=attempts,
                    fallback_reason=failed.reason,
                    **tried,
                )
                out.append(Rewrite(text, lineage))
                continue
            if self._rewriting:
                text = joiner.join(j.output or "" for j in parts)
                frame = None
            else:
                text, frame = self._template.render(stage, request, slot_text=parts[0].output)
            lineage = Lineage(
                teacher_backend=self.backend,
                teacher_model=self.model,
                prompt_id=prompt.id,
                prompt_sha=sha,
                sampling=sampling,
                seed=request.seed,
                frame_id=frame,
                attempts=attempts,
                grounding=parts[0].grounding,
                **tried,
            )
            out.append(Rewrite(text, lineage))
        return out
