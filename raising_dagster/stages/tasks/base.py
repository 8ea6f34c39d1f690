"""What every framing task shares: the contract the teachers and checks look a stage up by."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import polars as pl

from raising_dagster.config import ROLES, IdentityCard, Person
from raising_dagster.stages.framing import FIRST_PERSON, FRAME_WINDOW
from raising_dagster.teacher.base import RewriteRequest, Stage

EXCERPT_CHARS = 1200  # the part of a document an experience prompt shows the model
_FIRST_PERSON = re.compile(FIRST_PERSON)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of a text, at most `limit` characters, cut at a word boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(maxsplit=1)[0]
    return f"{cut} [...]"


_DUMPED: dict[int, tuple[IdentityCard | Person, dict[str, Any]]] = {}


def identity_context(identity: IdentityCard) -> dict[str, Any]:
    """`identity` and `people` (role -> person) as a template renders them: dumped once per
    identity card (the card is frozen; templates only read the dicts)."""
    held = _DUMPED.get(id(identity))
    if held is None or held[0] is not identity:
        dumped = {
            "identity": identity.model_dump(),
            "people": {role: identity.person(role).model_dump() for role in ROLES},
        }
        held = _DUMPED[id(identity)] = (identity, dumped)
    return held[1]


def dumped_person(person: Person) -> dict[str, Any]:
    """A person of the identity card as a template renders it (dumped once, see above)."""
    held = _DUMPED.get(id(person))
    if held is None or held[0] is not person:
        held = _DUMPED[id(person)] = (person, person.model_dump())
    return held[1]


def one_line(text: str | None) -> str | None:
    """A field from the data on one line (titles with newlines would break a dialogue turn)."""
    return " ".join(text.split()) if text else None


class FramingTask:
    """One framing stage in one place, as distilabel keeps a task together: the template that
    writes it, the LLM context its prompts render, the slot the model fills in experience mode,
    the rule a whole rewrite must meet, and the Polars predicate the checks use.

    Subclasses set the class attributes and override what their stage needs."""

    stage: ClassVar[Stage]
    variant: ClassVar[str]  # the record variant this stage's output is checked as
    template_id: ClassVar[str]
    slot: ClassVar[str]  # the template context key the model's text fills (experience mode)

    def template_prompt_id(self, request: RewriteRequest) -> str:
        """The template that writes this request (a stage may pick another, e.g. for safety)."""
        return self.template_id

    def context(self, request: RewriteRequest, identity: IdentityCard) -> dict[str, Any]:
        """What the stage's templates and prompts render from, for one request."""
        return {
            **identity_context(identity),
            "kind": request.kind,
            "title": one_line(request.title),
            "topics": list(request.topics),
            "values": [{"name": v.name, "description": v.description} for v in request.values],
            "variant": request.seed,
            "safety_flag": request.safety_flag,
        }

    def source(self, request: RewriteRequest) -> str:
        """The text a whole rewrite must keep the facts of."""
        return request.text

    def framed(self, texts: pl.Expr) -> pl.Expr:
        """True where a record is framed as this stage requires (the checks' predicate)."""
        raise NotImplementedError

    def suite_flags(self, texts: pl.Expr) -> list[pl.Expr]:
        """The framing columns this stage's expectation suite asserts on."""
        raise NotImplementedError

    def check_rewrite(self, text: str) -> str | None:
        """The stage's own rule for a whole rewrite: None, or why it is rejected."""
        return None if self.framed_text(text) else "not_framed"

    def check_piece(self, piece: str) -> str | None:
        """The stage's own rule for the text the model wrote in experience mode."""
        return None if "\n" not in piece.strip() else "not_one_paragraph"

    def framed_text(self, text: str) -> bool:
        return bool(pl.select(self.framed(pl.lit(text))).item())


def opens_in_first_person(text: str) -> bool:
    return _FIRST_PERSON.search(text[:FRAME_WINDOW]) is not None
