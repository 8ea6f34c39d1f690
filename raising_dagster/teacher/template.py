"""The `template` teacher: deterministic rule-based rewrites without an LLM (minimal reframing).

Each stage's template, and what it renders from, is the stage's own (stages/tasks/); this backend
renders it. The LLM backends use it to write the frame around the model's text in experience
mode and as the fallback when the model's output is rejected."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from raising_dagster.config import IdentityCard, model_sha, sha256_hex
from raising_dagster.prompts import load_prompt
from raising_dagster.stages.tasks import TASKS
from raising_dagster.teacher.base import Lineage, Rewrite, RewriteRequest, Stage


class TemplateTeacher:
    """Renders each stage from its versioned Jinja2 template and the identity card."""

    backend = "template"
    model = "rules"

    def __init__(self, identity: IdentityCard) -> None:
        self.identity = identity
        self._shas: dict[str, str] = {}
        self._sampling: dict[str, str] = {}

    def prompt_sha(self, stage: Stage) -> str:
        return self.sha(TASKS[stage].template_id)

    def sha(self, prompt_id: str) -> str:
        """Hash of a template and the identity card it renders."""
        if prompt_id not in self._shas:
            self._shas[prompt_id] = sha256_hex(
                load_prompt(prompt_id).sha + model_sha(self.identity)
            )
        return self._shas[prompt_id]

    def render(
        self, stage: Stage, request: RewriteRequest, slot_text: str | None = None
    ) -> tuple[str, str]:
        """The text of one request and the id of the template that wrote it; `slot_text` (a
        teacher-written piece) fills the stage's slot instead of the template's own words."""
        task = TASKS[stage]
        prompt = load_prompt(task.template_prompt_id(request))
        context: dict[str, Any] = task.context(request, self.identity)
        if slot_text is not None:
            context[task.slot] = slot_text
        return prompt.render(**context), prompt.id

    def lineage(self, prompt_id: str, seed: int, **fields: Any) -> Lineage:
        """The lineage of a record this teacher wrote."""
        if prompt_id not in self._sampling:
            sampling = load_prompt(prompt_id).sampling
            self._sampling[prompt_id] = json.dumps(sampling, sort_keys=True)
        return Lineage(
            teacher_backend=self.backend,
            teacher_model=self.model,
            prompt_id=prompt_id,
            prompt_sha=self.sha(prompt_id),
            sampling=self._sampling[prompt_id],
            seed=seed,
            **fields,
        )

    def rewrite(self, stage: Stage, requests: Sequence[RewriteRequest]) -> list[Rewrite]:
        rewrites = []
        for request in requests:
            text, prompt_id = self.render(stage, request)
            rewrites.append(Rewrite(text, self.lineage(prompt_id, request.seed)))
        return rewrites

    def close(self) -> None:
        return None
