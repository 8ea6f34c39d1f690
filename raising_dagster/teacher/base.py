"""The Teacher contract: batched rewrites of documents for one stage, with lineage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal, Protocol

import polars as pl

Stage = Literal["first_person", "experiential", "social"]
STAGES: tuple[Stage, ...] = ("first_person", "experiential", "social")


@dataclass(frozen=True, slots=True)
class ValueRef:
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class RewriteRequest:
    """One document to rewrite for one stage; `text` is the stage's input text (the raw text for
    the first stage, the previous stage's output after), `source_text` the raw document."""

    doc_id: str
    text: str
    kind: str
    title: str | None
    values: tuple[ValueRef, ...]
    seed: int
    source_text: str | None = None
    safety_flag: str | None = None
    topics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Lineage:
    """How one record's text was made: the one lineage record of the stage schemas, the
    generation cache and the assets' metadata.

    `teacher_backend`/`teacher_model` name who wrote the text (the template teacher after a
    fallback); `tried_backend`/`tried_model` the LLM that was asked, when one was.
    `frame_id`: in experience mode, the template that framed the model's text.
    `grounding`: content words the model's own text shares with the source (None: no model text).
    """

    teacher_backend: str
    teacher_model: str
    prompt_id: str
    prompt_sha: str
    sampling: str
    seed: int
    tried_backend: str | None = None
    tried_model: str | None = None
    frame_id: str | None = None
    cache_hit: bool = False
    attempts: int = 1
    fallback_reason: str | None = None
    grounding: int | None = None


_POLARS: dict[str, pl.DataType] = {
    "str": pl.String(),
    "str | None": pl.String(),
    "int": pl.Int64(),
    "int | None": pl.Int32(),
    "bool": pl.Boolean(),
}
LINEAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Lineage))
LINEAGE_COLUMNS: dict[str, pl.DataType] = {
    f.name: _POLARS[str(f.type)] for f in fields(Lineage)
} | {"attempts": pl.Int32()}


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A teacher's output for one request, with what made it."""

    text: str
    lineage: Lineage


class Teacher(Protocol):
    """Rewrites a batch of documents for a stage; outputs are in request order."""

    backend: str
    model: str

    def rewrite(self, stage: Stage, requests: Sequence[RewriteRequest]) -> list[Rewrite]: ...

    def prompt_sha(self, stage: Stage) -> str:
        """Hash of everything that shapes this stage's outputs (prompt, identity card)."""
        ...

    def close(self) -> None: ...
