"""The first-person stage: one persistent "I" says what it is reading, then quotes it whole."""

from __future__ import annotations

from typing import Any

import polars as pl

from raising_dagster.config import IdentityCard
from raising_dagster.stages.framing import is_first_person
from raising_dagster.stages.tasks.base import FramingTask, opens_in_first_person
from raising_dagster.teacher.base import RewriteRequest


class FirstPersonTask(FramingTask):
    stage = "first_person"
    variant = "first_person"
    template_id = "first_person/template.v2"
    slot = "opener"

    def context(self, request: RewriteRequest, identity: IdentityCard) -> dict[str, Any]:
        return {**super().context(request, identity), "text": request.text, "opener": None}

    def framed(self, texts: pl.Expr) -> pl.Expr:
        return is_first_person(texts)

    def suite_flags(self, texts: pl.Expr) -> list[pl.Expr]:
        return [is_first_person(texts).alias("framed_first_person")]

    def check_rewrite(self, text: str) -> str | None:
        return None if opens_in_first_person(text) else "no_first_person"

    def check_piece(self, piece: str) -> str | None:
        return super().check_piece(piece) or (
            None if opens_in_first_person(piece) else "no_first_person"
        )
