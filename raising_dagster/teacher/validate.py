"""Pure validators of a teacher's output: a reason string when it is rejected.

Two kinds of output: a whole rewrite (`mode: rewrite`) and, in `mode: experience`, a piece the
model wrote around a verbatim document (a reflection, the "I"'s turn), started for it by a
prefill. What is common is here; each stage's own rule is its task's (stages/tasks/), so an
accepted output also passes the asset checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from raising_dagster.config import IdentityCard
from raising_dagster.stages.framing import I_SPEAKER, parse_dialogue
from raising_dagster.stages.lexicon import stopwords
from raising_dagster.stages.tasks import TASKS
from raising_dagster.teacher.base import Stage, ValueRef

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
_NOT_NAMES = frozenset(
    "Reading Learning Thinking Going Trying Curious Happy Sad Sure Not So Still Here Now Glad "
    "Sorry Ready Looking Writing Listening Wondering Afraid Proud Grateful Confused Excited".split()
)
_ECHO_WORDS = 8
_SHINGLE = 6
# A sentence ends at . ! ? (optionally closed by a quote or bracket) before a space or the end.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_GROUNDING_WORD = re.compile(r"[a-z][a-z'-]{4,}")
# A speaker's mark ("Grandpa Amos: ", "I: ") inside a piece: the model wrote a dialogue of its own.
_SPEAKER_MARK = re.compile(r"(?:^|[\s.!?])(?:I|[A-Z][a-z.]+(?: [A-Z][a-z]+)?):\s")


@dataclass(frozen=True, slots=True)
class Limits:
    """Length bounds of an output, in words: of a whole rewrite relative to its input; of an
    experience piece absolute (about 40-120 tokens)."""

    min_words: int = 8
    min_ratio: float = 0.25
    max_ratio: float = 4.0
    min_overlap: float = 0.2  # share of the source's content words a rewrite must keep
    piece_min_words: int = 8
    piece_max_words: int = 110
    min_grounding: int = 0  # content words a piece must share with its source


def validate(
    stage: Stage,
    text: str,
    *,
    source: str,
    identity: IdentityCard,
    instructions: str = "",
    limits: Limits | None = None,
) -> str | None:
    """None when `text` is an acceptable whole `stage` rewrite of `source`, else the reason."""
    limits = limits or Limits()
    text = text.strip()
    if not text:
        return "empty"
    words, source_words = len(text.split()), len(source.split())
    if words < max(limits.min_words, int(limits.min_ratio * source_words)):
        return "too_short"
    if words > max(limits.min_words * 4, int(limits.max_ratio * source_words) + 50):
        return "too_long"
    if refuses(text, source):
        return "refusal"
    if _DELIMITER.search(text) or echoes(text, instructions):
        return "echoed_instructions"
    if overlap(text, source) < limits.min_overlap:
        return "off_topic"
    return TASKS[stage].check_rewrite(text) or _identity(text, identity, stage == "social")


def finish_piece(prefill: str, completion: str) -> str | None:
    """The started answer and the model's continuation as one text (whitespace collapsed), cut
    after its last full sentence; None when no sentence ends after the prefill."""
    glued = completion[:1].isspace() or completion[:1] in ",.;:!?'" or prefill[-1:].isspace()
    joined = " ".join((prefill + ("" if glued or not prefill else " ") + completion).split())
    start = len(" ".join(prefill.split()))
    ends = [m.end() for m in _SENTENCE_END.finditer(joined) if m.end() > start]
    return joined[: ends[-1]] if ends else None


def validate_piece(
    stage: Stage,
    piece: str | None,
    *,
    prefill: str,
    source: str,
    values: Sequence[ValueRef],
    identity: IdentityCard,
    instructions: str = "",
    limits: Limits | None = None,
) -> str | None:
    """None when `piece` (a finished experience piece, prefill included) is acceptable: complete,
    on length, the stage's form, names a taught value, no refusal, no echoed instructions, no
    drift into a third person or another narrator, not a copy of the source."""
    limits = limits or Limits()
    if piece is None:
        return "truncated"
    own = piece[len(prefill.strip()) :] if piece.startswith(prefill.strip()) else piece
    if not own.strip():
        return "empty"
    words = len(piece.split())
    if len(own.split()) < limits.piece_min_words // 2 or words < limits.piece_min_words:
        return "too_short"
    if words > limits.piece_max_words:
        return "too_long"
    if refuses(own, source):
        return "refusal"
    if _DELIMITER.search(piece) or echoes(piece, instructions):
        return "echoed_instructions"
    if copies(own, source):
        return "copies_source"
    if _SPEAKER_MARK.search(own):
        return "speaker_turns"
    reason = TASKS[stage].check_piece(piece) or _identity(piece, identity, dialogue=False)
    if reason:
        return reason
    if not any(names_value(piece, v) for v in values):
        return "value_not_named"
    if grounding(own, source, values) < limits.min_grounding:
        return "ungrounded"
    return None


def refuses(text: str, source: str) -> bool:
    """True when the text holds refusal boilerplate that its source does not (a faithful
    rewrite of a document that itself apologizes is not a refusal)."""
    said = source.lower()
    return any(m.group(0).lower() not in said for m in _REFUSAL.finditer(text))


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


def echoes(text: str, instructions: str, n: int = _ECHO_WORDS) -> bool:
    """True when `text` repeats any run of `n` words of the instructions (the system prompt)."""
    said = _words(instructions)
    if len(said) < n:
        return False
    grams = {tuple(said[i : i + n]) for i in range(len(said) - n + 1)}
    out = _words(text)
    return any(tuple(out[i : i + n]) in grams for i in range(len(out) - n + 1))


def copies(text: str, source: str, n: int = _SHINGLE) -> bool:
    """True when most of the text's runs of `n` words come from the source (a copy, not a
    reflection)."""
    out = _words(text)
    if len(out) < n:
        return False
    src = _words(source)
    grams = {tuple(src[i : i + n]) for i in range(len(src) - n + 1)}
    shingles = [tuple(out[i : i + n]) for i in range(len(out) - n + 1)]
    return sum(s in grams for s in shingles) / len(shingles) >= 0.5


def overlap(text: str, source: str) -> float:
    """Share of the source's distinct content words (4+ letters) that the text uses too."""
    wanted = {w for w in _words(source) if len(w) >= 4}
    if not wanted:
        return 1.0
    return len(wanted & set(_words(text))) / len(wanted)


def names_value(text: str, value: ValueRef) -> bool:
    """Whether a text names a value: its name (any ending: honest, honesty) or at least two
    content words of its description."""
    stem = value.name[:-1] if value.name.endswith("y") else value.name
    if re.search(rf"(?i)\b{re.escape(stem)}", text):
        return True
    described = _content_words(value.description)
    return len(described & _content_words(text)) >= min(2, len(described))


def grounding(text: str, source: str, values: Sequence[ValueRef] = ()) -> int:
    """Content words (5+ letters, not stopwords (lexicons/stopwords_en.txt), not the values'
    own words) that a text shares with its source: whether it refers to the document at all."""
    value_words = set().union(*(_content_words(f"{v.name} {v.description}") for v in values))
    return len((_content_words(text) & _content_words(source)) - value_words)


@cache
def _stop() -> frozenset[str]:
    return frozenset(stopwords().to_list())


def _content_words(text: str) -> set[str]:
    return set(_GROUNDING_WORD.findall(text.lower())) - _stop()


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
