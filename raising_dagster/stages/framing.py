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


def is_dialogue(text: str, min_turns: int = 2) -> bool:
    """A parseable dialogue with at least `min_turns` turns and the "I" speaking."""
    turns = parse_dialogue(text)
    return (
        turns is not None
        and len(turns) >= min_turns
        and any(s == I_SPEAKER for s, _ in turns)
        and any(s != I_SPEAKER for s, _ in turns)
    )


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
