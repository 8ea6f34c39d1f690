"""What a framed record looks like: the checks the stages, validators and asset checks share."""

from __future__ import annotations

import re

import polars as pl

# A first-person marker near the start: the "I" says what it is doing before the document.
FIRST_PERSON = r"(?i)\b(i|i'm|i've|i'd|i'll|me|my|myself)\b"
FRAME_WINDOW = 400
# A dialogue turn: `Name: text` on its own line; the "I" speaks as `I`.
TURN = re.compile(r"^(?P<speaker>[A-Z][\w.' -]{0,40}?):\s+(?P<text>\S.*)$")
I_SPEAKER = "I"


def is_first_person(texts: pl.Expr) -> pl.Expr:
    """True where the opening of the text is in the first person."""
    return texts.str.slice(0, FRAME_WINDOW).str.contains(FIRST_PERSON)


def has_reflection(texts: pl.Expr) -> pl.Expr:
    """True where the last paragraph reflects in the first person after the document."""
    last = texts.str.split("\n\n").list.last()
    return (texts.str.count_matches("\n\n") >= 1) & last.str.contains(FIRST_PERSON)


def parse_dialogue(text: str) -> list[tuple[str, str]] | None:
    """The turns of a dialogue, or None if any non-empty line is not a `Name: text` turn."""
    turns = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = TURN.match(line.strip())
        if match is None:
            return None
        turns.append((match["speaker"].strip(), match["text"].strip()))
    return turns


def dialogue_flags(text: str) -> dict[str, bool]:
    """Whether a text parses into at least two turns, and whether the "I" speaks with someone."""
    turns = parse_dialogue(text)
    speakers = {s for s, _ in turns or []}
    return {
        "dialogue_parses": turns is not None and len(turns) >= 2,
        "i_speaks": I_SPEAKER in speakers and len(speakers) >= 2,
    }


def is_dialogue(text: str) -> bool:
    """A parseable dialogue with at least two turns and the "I" speaking with someone."""
    return all(dialogue_flags(text).values())


def framed(texts: pl.Expr, variant: pl.Expr) -> pl.Expr:
    """True where a record is framed for its variant (first person / experience / dialogue)."""
    dialogue = texts.map_elements(is_dialogue, return_dtype=pl.Boolean)
    return (
        pl.when(variant == "social")
        .then(dialogue)
        .when(variant == "experiential")
        .then(is_first_person(texts) & has_reflection(texts))
        .otherwise(is_first_person(texts))
    )
