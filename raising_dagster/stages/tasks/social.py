"""The social stage: a scripted dialogue in which the "I" talks with a person of the identity card
who carries the document's sentences, in order, turn by turn."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

import polars as pl

from raising_dagster.config import IdentityCard, Person, Role, sha256_hex
from raising_dagster.stages.framing import (
    FIRST_PERSON,
    TURN,
    dialogue_flags,
    is_dialogue,
    parse_dialogue,
)
from raising_dagster.stages.tasks.base import FramingTask, dumped_person
from raising_dagster.teacher.base import RewriteRequest

# Who may talk a kind of document through with the "I"; one is picked per document by its seed.
ROLES_BY_KIND: dict[str, tuple[Role, ...]] = {
    "fable": ("grandparent", "parent", "grandparent", "teacher"),
    "story": ("grandparent", "parent", "sibling", "teacher"),
    "book": ("grandparent", "parent", "teacher"),
    "definition": ("grandparent", "teacher", "parent"),
    "dictionary": ("teacher", "grandparent", "parent", "sibling"),
    "quotation": ("grandparent", "mentor", "parent", "teacher", "peer"),
    "poem": ("grandparent", "parent", "teacher", "sibling"),
    "joke": ("peer", "sibling", "parent", "grandparent"),
    "techdoc": ("mentor", "teacher", "peer"),
    "code": ("mentor", "peer", "teacher"),
    "howto": ("parent", "mentor", "teacher"),
    "qa": ("teacher", "mentor", "parent", "peer"),
    "news": ("peer", "parent", "teacher"),
    "forum": ("peer", "sibling", "mentor"),
    "dilemma": ("mentor", "teacher", "grandparent"),
    "essay": ("mentor", "teacher"),
}
DEFAULT_ROLES: tuple[Role, ...] = ("teacher", "mentor", "parent", "peer")
VERSE_KINDS = frozenset({"poem", "code"})  # kinds whose line breaks carry meaning
_SENTENCE_CUT = re.compile(r"[.!?][\"')\]]? ")
_CHUNK_WORDS = 45
_VERSE_LINES = 4
_FIRST_PERSON = re.compile(FIRST_PERSON)


def sentences_of(text: str) -> list[str]:
    """The sentences of a text with its whitespace made single spaces: split at each space after
    `.`, `!` or `?`, or after one of them and a closing quote or bracket."""
    flat = " ".join(text.split())
    cuts = [-1, *(m.end() - 1 for m in _SENTENCE_CUT.finditer(flat)), len(flat)]
    pieces = (flat[a + 1 : b] for a, b in pairwise(cuts))
    return [s for s in pieces if s]


def content_chunks(text: str, max_words: int = _CHUNK_WORDS) -> list[str]:
    """Sentences grouped into turn-sized passages: every word of the text, in order."""
    sentences = sentences_of(text)
    chunks: list[str] = []
    current: list[str] = []
    words = 0  # in `current`
    for sentence in sentences:
        size = len(sentence.split())
        if current and words + size > max_words:
            chunks.append(" ".join(current))
            current, words = [], 0
        current.append(sentence)
        words += size
    if current:
        chunks.append(" ".join(current))
    return chunks


def verse_chunks(text: str, lines_per_turn: int = _VERSE_LINES) -> list[str]:
    """Lines grouped into turns, kept as lines: the first on the turn, the rest on indented
    continuation lines (every non-empty line of the text, in order)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    groups = [lines[i : i + lines_per_turn] for i in range(0, len(lines), lines_per_turn)]
    return ["\n    ".join([g[0].strip(), *g[1:]]) for g in groups]


def choose_person(kind: str, seed: int, identity: IdentityCard) -> Person:
    """The person who talks this document through: by kind, then seed."""
    roles = ROLES_BY_KIND.get(kind, DEFAULT_ROLES)
    pick = int(sha256_hex(f"person:{seed}")[:8], 16) % len(roles)
    return identity.person(roles[pick])


class SocialTask(FramingTask):
    stage = "social"
    variant = "social"
    template_id = "social/template.v2"
    slot = "closing_turn"

    def source(self, request: RewriteRequest) -> str:
        return request.source_text if request.source_text is not None else request.text

    def context(self, request: RewriteRequest, identity: IdentityCard) -> dict[str, Any]:
        text = self.source(request)
        chunks = verse_chunks(text) if request.kind in VERSE_KINDS else content_chunks(text)
        return {
            **super().context(request, identity),
            "person": dumped_person(choose_person(request.kind, request.seed, identity)),
            "chunks": chunks,
            "closing_turn": None,
        }

    def framed(self, texts: pl.Expr) -> pl.Expr:
        return texts.map_elements(is_dialogue, return_dtype=pl.Boolean)

    def suite_flags(self, texts: pl.Expr) -> list[pl.Expr]:
        dtype = pl.Struct({"dialogue_parses": pl.Boolean, "i_speaks": pl.Boolean})
        return [texts.map_elements(dialogue_flags, return_dtype=dtype).alias("dialogue")]

    def check_rewrite(self, text: str) -> str | None:
        if parse_dialogue(text) is None:
            return "not_dialogue"
        return None if is_dialogue(text) else "dialogue_without_i"

    def check_piece(self, piece: str) -> str | None:
        reason = super().check_piece(piece)
        if reason:
            return reason
        if TURN.match(piece.strip()):
            return "speaker_turns"  # the model wrote speaker names: a dialogue, not my turn
        return None if _FIRST_PERSON.search(piece) else "no_first_person"


def selected_for_dialogue(doc_id: str, seed: int, share: float) -> bool:
    """Whether a document also contributes a dialogue record: a seeded `social_share` of them."""
    return share >= 1.0 or int(sha256_hex(f"{seed}:social:{doc_id}")[:8], 16) < share * 2**32
