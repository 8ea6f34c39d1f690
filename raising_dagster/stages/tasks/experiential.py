"""The experiential stage: the framed document set in lived experience, with a first-person
reflection that connects it to the values it teaches."""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from raising_dagster.config import IdentityCard
from raising_dagster.stages.framing import FIRST_PERSON, has_reflection, is_first_person
from raising_dagster.stages.tasks.base import FramingTask, opens_in_first_person
from raising_dagster.teacher.base import RewriteRequest

RECONTEXTUALIZE_ID = "experiential/recontextualize.v1"
_FIRST_PERSON = re.compile(FIRST_PERSON)


class ExperientialTask(FramingTask):
    stage = "experiential"
    variant = "experiential"
    template_id = "experiential/template.v2"
    slot = "reflection"

    def template_prompt_id(self, request: RewriteRequest) -> str:
        """Safety-flagged documents are recontextualized by a fixed template, never a model."""
        return RECONTEXTUALIZE_ID if request.safety_flag else self.template_id

    def context(self, request: RewriteRequest, identity: IdentityCard) -> dict[str, Any]:
        return {**super().context(request, identity), "framed": request.text, "reflection": None}

    def framed(self, texts: pl.Expr) -> pl.Expr:
        return is_first_person(texts) & has_reflection(texts)

    def suite_flags(self, texts: pl.Expr) -> list[pl.Expr]:
        return [
            is_first_person(texts).alias("framed_first_person"),
            has_reflection(texts).alias("reflects_in_first_person"),
        ]

    def check_rewrite(self, text: str) -> str | None:
        if not opens_in_first_person(text):
            return "no_first_person"
        paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        if len(paragraphs) < 2 or not _FIRST_PERSON.search(text.split("\n\n")[-1]):
            return "no_reflection"  # the check splits on exactly "\n\n": keep that shape
        return None

    def check_piece(self, piece: str) -> str | None:
        reason = super().check_piece(piece)
        return reason or (None if _FIRST_PERSON.search(piece) else "no_first_person")
