"""What a framed record looks like: the detectors the framing tasks, validators and checks share.

Each framing stage's own rule (which of these it needs) lives with the stage in stages/tasks/.
"""

from __future__ import annotations

import re

import polars as pl

# A first-person marker near the start: the "I" says what it is doing before the document.
FIRST_PERSON = r"(?i)\b(i|i'm|i've|i'd|i'll|me|my|myself)\b"
FRAME_WINDOW = 400
# A dialogue turn: `Name: text` on its own line; the "I" speaks as `I`. A turn may go on over
# continuation lines indented by four spaces or a tab (lines of verse, code).
TURN = re.compile(r"^(?P<speaker>[A-Z][\w.' -]{0,40}?):\s+(?P<text>\S.*)$")
CONTINUATION = ("    ", "\t")
I_SPEAKER = "I"


def is_first_person(texts: pl.Expr) -> pl.Expr:
    """True where the opening of the text is in the first person."""
    return texts.str.slice(0, FRAME_WINDOW).str.contains(FIRST_PERSON)


def has_reflection(texts: pl.Expr) -> pl.Expr:
    """True where the last paragraph reflects in the first person after the document."""
    last = texts.str.split("\n\n").list.last()
    return (texts.str.count_matches("\n\n") >= 1) & last.str.contains(FIRST_PERSON)


def parse_dialogue(text: str) -> list[tuple[str, str]] | None:
    """The turns of a dialogue, or None if a non-empty line is neither a `Name: text` turn nor an
    indented continuation of one."""
    turns: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if turns and line.startswith(CONTINUATION):
            speaker, said = turns[-1]
            turns[-1] = (speaker, f"{said}\n{line.strip()}")
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
