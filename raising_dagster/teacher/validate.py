"""Pure validators of a teacher's output for each stage: a reason string when it is rejected.

They reuse the framing detectors of stages/framing.py (first-person opening, reflection paragraph,
`Name: text` dialogue with the "I" speaking), so an accepted output also passes the asset checks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from raising_dagster.config import IdentityCard
from raising_dagster.stages.framing import (
    FIRST_PERSON,
    FRAME_WINDOW,
    I_SPEAKER,
    is_dialogue,
    parse_dialogue,
)
from raising_dagster.teacher.base import Stage

_FIRST_PERSON = re.compile(FIRST_PERSON)
_REFUSAL = re.compile(
    r"(?i)\b(?:as an ai(?: language model)?|i(?:'m| am) (?:sorry|unable)|i can(?:not|'t) "
    r"(?:help|assist|comply|fulfil|provide|do that|rewrite)|i(?:'m| am) not able to|"
    r"i won't be able to)\b"
)
_DELIMITER = re.compile(r"(?i)<\s*/?\s*document\b|<\|[a-z_]+\|>")
_NARRATOR_NAME = re.compile(r"\b(?:[Mm]y name is|I am|I'm|[Cc]all me)\s+([A-Z][a-z]+)\b")
# The identity's name followed by a narration verb: the "I" turned into a third person.
_NARRATION_VERBS = (
    "is|was|were|has|had|does|did|felt|feels|thought|thinks|said|says|wondered|wonders|learned|"
    "learns|realized|realizes|knew|knows|wanted|wants|went|goes|read|reads|smiled|smiles|asked|"
    "asks|noticed|notices|decided|decides|remembered|remembers|looked|looks|saw|sees|tried|tries"
)
_ECHO_WORDS = 8


@dataclass(frozen=True, slots=True)
class Limits:
    """Length bounds of an output relative to its input, in words."""

    min_words: int = 8
    min_ratio: float = 0.25
    max_ratio: float = 4.0
    min_overlap: float = 0.2  # share of the source's content words the output must keep


def validate(
    stage: Stage,
    text: str,
    *,
    source: str,
    identity: IdentityCard,
    instructions: str = "",
    limits: Limits | None = None,
) -> str | None:
    """None when `text` is an acceptable `stage` rewrite of `source`, else the rejection reason."""
    limits = limits or Limits()
    text = text.strip()
    if not text:
        return "empty"
    words, source_words = len(text.split()), len(source.split())
    if words < max(limits.min_words, int(limits.min_ratio * source_words)):
        return "too_short"
    if words > max(limits.min_words * 4, int(limits.max_ratio * source_words) + 50):
        return "too_long"
    if _REFUSAL.search(text):
        return "refusal"
    if _DELIMITER.search(text) or echoes(text, instructions):
        return "echoed_instructions"
    if overlap(text, source) < limits.min_overlap:
        return "off_topic"
    reason = {"first_person": _first_person, "experiential": _experiential, "social": _social}[
        stage
    ](text)
    return reason or _identity(text, identity, dialogue=stage == "social")


def _first_person(text: str) -> str | None:
    return None if _FIRST_PERSON.search(text[:FRAME_WINDOW]) else "no_first_person"


def _experiential(text: str) -> str | None:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    if _first_person(text):
        return "no_first_person"
    if len(paragraphs) < 2 or not _FIRST_PERSON.search(paragraphs[-1]):
        return "no_reflection"
    # The asset check splits on exactly "\n\n": keep the same paragraph shape.
    if not _FIRST_PERSON.search(text.split("\n\n")[-1]):
        return "no_reflection"
    return None


def _social(text: str) -> str | None:
    if parse_dialogue(text) is None:
        return "not_dialogue"
    return None if is_dialogue(text) else "dialogue_without_i"


def _identity(text: str, identity: IdentityCard, dialogue: bool) -> str | None:
    """Reject an "I" that became a third person or another named narrator."""
    name = re.escape(identity.name)
    narration = text
    if dialogue:
        turns = parse_dialogue(text) or []
        if any(speaker == identity.name for speaker, _ in turns):
            return "named_narrator"
        narration = "\n".join(t for s, t in turns if s == I_SPEAKER)
    if re.search(rf"\b{name}\b(?:'s)?\s+(?:\w+ly\s+)?(?:{_NARRATION_VERBS})\b", narration):
        return "third_person"
    allowed = {identity.name, *(p.name.split()[-1] for p in identity.people)}
    for match in _NARRATOR_NAME.finditer(narration):
        if match[1] not in allowed and match[1] not in _NOT_NAMES:
            return "other_narrator"
    return None


_NOT_NAMES = frozenset(
    "Reading Learning Thinking Going Trying Curious Happy Sad Sure Not So Still Here Now Glad "
    "Sorry Ready Looking Writing Listening Wondering Afraid Proud Grateful Confused Excited".split()
)


def echoes(text: str, instructions: str, n: int = _ECHO_WORDS) -> bool:
    """True when `text` repeats any run of `n` words of the instructions (the system prompt)."""
    said = _words(instructions)
    if len(said) < n:
        return False
    grams = {tuple(said[i : i + n]) for i in range(len(said) - n + 1)}
    out = _words(text)
    return any(tuple(out[i : i + n]) in grams for i in range(len(out) - n + 1))


def overlap(text: str, source: str) -> float:
    """Share of the source's distinct content words (4+ letters) that the text uses too."""
    wanted = {w for w in _words(source) if len(w) >= 4}
    if not wanted:
        return 1.0
    return len(wanted & set(_words(text))) / len(wanted)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def render_turns(payload: str, person_name: str) -> str | None:
    """`Name: text` lines from a structured dialogue (`{"turns": [{"speaker", "text"}]}`)."""
    try:
        turns = json.loads(payload)["turns"]
        lines = []
        for turn in turns:
            speaker = str(turn["speaker"]).strip()
            said = " ".join(str(turn["text"]).split())
            if not said:
                continue
            speaker = I_SPEAKER if speaker.lower() in {"i", "me"} else speaker
            lines.append(f"{speaker}: {said}")
    except (ValueError, KeyError, TypeError):
        return None
    return "\n".join(lines) if lines else None


def dialogue_schema(person_name: str) -> dict[str, object]:
    """JSON schema of a structured dialogue between the "I" and one person."""
    return {
        "type": "object",
        "properties": {
            "turns": {
                "type": "array",
                "minItems": 2,
                "items": {
                    "type": "object",
                    "properties": {
                        "speaker": {"type": "string", "enum": [person_name, I_SPEAKER]},
                        "text": {"type": "string", "minLength": 1},
                    },
                    "required": ["speaker", "text"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["turns"],
        "additionalProperties": False,
    }
