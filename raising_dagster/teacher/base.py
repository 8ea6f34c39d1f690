"""The Teacher contract: batched rewrites of documents for one stage, with lineage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Stage = Literal["first_person", "experiential", "social"]
STAGES: tuple[Stage, ...] = ("first_person", "experiential", "social")


@dataclass(frozen=True, slots=True)
class ValueRef:
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class RewriteRequest:
    """One document to rewrite for one stage; `text` is the stage's input text."""

    doc_id: str
    text: str
    kind: str
    title: str | None
    values: tuple[ValueRef, ...]
    seed: int
    source_text: str | None = None
    safety_flag: str | None = None


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A teacher's output for one request, with what made it."""

    text: str
    prompt_id: str
    prompt_sha: str
    sampling: str
    seed: int
    cache_hit: bool = False
    attempts: int = 1
    fallback_reason: str | None = None


class Teacher(Protocol):
    """Rewrites a batch of documents for a stage; outputs are in request order."""

    backend: str
    model: str

    def rewrite(self, stage: Stage, requests: Sequence[RewriteRequest]) -> list[Rewrite]: ...

    def prompt_sha(self, stage: Stage) -> str:
        """Hash of everything that shapes this stage's outputs (prompt, identity card)."""
        ...

    def close(self) -> None: ...
