"""The `template` teacher: deterministic rule-based rewrites without an LLM (minimal reframing)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from raising_dagster.config import IdentityCard, model_sha, sha256_hex
from raising_dagster.prompts import load_prompt
from raising_dagster.teacher.base import Rewrite, RewriteRequest, Stage

PROMPT_IDS: dict[Stage, str] = {
    "first_person": "first_person/template.v1",
    "experiential": "experiential/template.v1",
    "social": "social/template.v1",
}
RECONTEXTUALIZE_ID = "experiential/recontextualize.v1"
ROLE_BY_KIND: dict[str, str] = {
    "definition": "grandparent",
    "fable": "grandparent",
    "story": "grandparent",
    "book": "grandparent",
    "essay": "mentor",
    "dilemma": "mentor",
    "news": "peer",
    "forum": "peer",
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+")
_CHUNK_WORDS = 45


def content_chunks(text: str, max_words: int = _CHUNK_WORDS) -> list[str]:
    """Sentences grouped into turn-sized passages: every word of the text, in order."""
    sentences = [s for s in _SENTENCE_END.split(" ".join(text.split())) if s]
    chunks: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        if current and sum(len(s.split()) for s in current) + len(sentence.split()) > max_words:
            chunks.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        chunks.append(" ".join(current))
    return chunks


class TemplateTeacher:
    """Renders each stage from its versioned Jinja2 template and the identity card."""

    backend = "template"
    model = "rules"

    def __init__(self, identity: IdentityCard) -> None:
        self.identity = identity
        roles = ("grandparent", "teacher", "peer", "mentor")
        self._people = {role: identity.person(role).model_dump() for role in roles}
        self._identity = identity.model_dump()
        self._shas: dict[str, str] = {}

    def prompt_sha(self, stage: Stage) -> str:
        return self._sha(PROMPT_IDS[stage])

    def _sha(self, prompt_id: str) -> str:
        if prompt_id not in self._shas:
            self._shas[prompt_id] = sha256_hex(
                load_prompt(prompt_id).sha + model_sha(self.identity)
            )
        return self._shas[prompt_id]

    def _prompt_id(self, stage: Stage, request: RewriteRequest) -> str:
        if stage == "experiential" and request.safety_flag:
            return RECONTEXTUALIZE_ID
        return PROMPT_IDS[stage]

    def rewrite(self, stage: Stage, requests: Sequence[RewriteRequest]) -> list[Rewrite]:
        rewrites = []
        for request in requests:
            prompt = load_prompt(self._prompt_id(stage, request))
            rewrites.append(
                Rewrite(
                    text=prompt.render(**self._context(stage, request)),
                    prompt_id=prompt.id,
                    prompt_sha=self._sha(prompt.id),
                    sampling=json.dumps(prompt.sampling, sort_keys=True),
                    seed=request.seed,
                )
            )
        return rewrites

    def _context(self, stage: Stage, request: RewriteRequest) -> dict[str, object]:
        values = [{"name": v.name, "description": v.description} for v in request.values]
        context: dict[str, object] = {
            "kind": request.kind,
            "title": request.title,
            "variant": request.seed,
            "values": values,
            "safety_flag": request.safety_flag,
            "people": self._people,
            "identity": self._identity,
        }
        if stage == "first_person":
            context["text"] = request.text
        elif stage == "experiential":
            context["framed"] = request.text
        else:
            context["person"] = self._people[ROLE_BY_KIND.get(request.kind, "teacher")]
            context["chunks"] = content_chunks(request.source_text or request.text)
        return context

    def close(self) -> None:
        return None
