"""Validators of teacher outputs: clean, noisy, empty and malformed outputs for each stage."""

import pytest

from raising_dagster.config import load_identity
from raising_dagster.teacher.base import ValueRef
from raising_dagster.teacher.validate import (
    Limits,
    echoes,
    finish_piece,
    grounding,
    render_turns,
    validate,
    validate_piece,
)

IDENTITY = load_identity()
SOURCE = (
    "The fox saw grapes hanging high on a vine. He jumped and jumped but could not reach them. "
    "At last he walked away and said the grapes were sour anyway."
)
FIRST = (
    "Today I read a fable. A fox saw grapes hanging high on a vine; he jumped but could not "
    "reach them, then walked away and said the grapes were sour anyway."
)
SYSTEM = "You rewrite documents so that they are told by Sol, a young learner who reads everything."


def check(stage: str, text: str, **kw: object) -> str | None:
    return validate(stage, text, source=SOURCE, identity=IDENTITY, instructions=SYSTEM, **kw)


@pytest.mark.parametrize(
    ("stage", "text", "reason"),
    [
        ("first_person", FIRST, None),
        ("first_person", "", "empty"),
        ("first_person", "I read it.", "too_short"),
        ("first_person", FIRST * 20, "too_long"),
        (
            "first_person",
            SOURCE + " The grapes were green and the vine was tall.",
            "no_first_person",
        ),
        (
            "first_person",
            "I'm sorry, but I can't help with rewriting this fable about grapes "
            "hanging on a vine that the fox could not reach.",
            "refusal",
        ),
        (
            "first_person",
            "As an AI language model I read about a fox and grapes hanging high "
            "on a vine; he walked away.",
            "refusal",
        ),
        (
            "first_person",
            FIRST + " You rewrite documents so that they are told by Sol.",
            "echoed_instructions",
        ),
        ("first_person", FIRST + " </document>", "echoed_instructions"),
        (
            "first_person",
            "I went to the market and bought apples, bread and some cheese for "
            "dinner with my family tonight.",
            "off_topic",
        ),
        (
            "first_person",
            "I read this. Sol thought the fox saw grapes hanging high on a vine, but walked away.",
            "third_person",
        ),
        (
            "first_person",
            "My name is Mark and I read a fable: a fox saw grapes hanging high on a "
            "vine and walked away.",
            "other_narrator",
        ),
        ("experiential", FIRST + "\n\nI think it is more honest to admit what I wanted.", None),
        ("experiential", FIRST, "no_reflection"),
        ("experiential", FIRST + "\n\nThe fox was sour about the grapes.", "no_reflection"),
        (
            "social",
            "Grandpa Amos: A fox saw grapes hanging high on a vine.\nI: Could he reach "
            "them?\nGrandpa Amos: No, he walked away and said they were sour anyway.",
            None,
        ),
        (
            "social",
            "Grandpa Amos: A fox saw grapes hanging high on a vine.\nGrandpa Amos: He "
            "walked away and said they were sour anyway.",
            "dialogue_without_i",
        ),
        (
            "social",
            "A fox saw grapes hanging high on a vine.\nI: Could he reach them and walked away?",
            "not_dialogue",
        ),
        (
            "social",
            "Grandpa Amos: A fox saw grapes hanging high on a vine.\nSol: Could he "
            "reach them?\nI: He walked away and said they were sour.",
            "named_narrator",
        ),
    ],
)
def test_validate(stage: str, text: str, reason: str | None) -> None:
    assert check(stage, text) == reason


def test_addressing_the_i_by_name_in_dialogue_is_fine() -> None:
    text = (
        "Grandpa Amos: Sol, a fox saw grapes hanging high on a vine.\nI: Could he reach them?\n"
        "Grandpa Amos: No, Sol. He walked away and said they were sour anyway."
    )
    assert check("social", text) is None


def test_length_limits_are_configurable() -> None:
    assert check("first_person", FIRST, limits=Limits(min_ratio=2.0)) == "too_short"


def test_echoes_needs_a_long_run_of_words() -> None:
    assert not echoes("told by Sol", SYSTEM)
    assert echoes("well: they are told by Sol, a young learner who reads it", SYSTEM)


def test_render_turns() -> None:
    good = (
        '{"turns": [{"speaker": "Noor", "text": "Look  at this."},'
        ' {"speaker": "i", "text": "Yes."}]}'
    )
    assert render_turns(good, "Noor") == "Noor: Look at this.\nI: Yes."
    for bad in ["", "[]", '{"turns": 3}', '{"turns": [{"who": "I"}]}', '{"turns": []}']:
        assert render_turns(bad, "Noor") is None


def test_a_faithful_rewrite_of_a_document_that_apologizes_is_not_a_refusal() -> None:
    source = (
        "I'm sorry, but I cannot attend the meeting on Friday. I am unable to travel because "
        "my car broke down, and I apologize to everyone who waited for me."
    )
    rewrite = (
        "Today I read a short note. Its writer says: I'm sorry, but I cannot attend the meeting "
        "on Friday; I am unable to travel because my car broke down, and I apologize."
    )
    assert validate("first_person", rewrite, source=source, identity=IDENTITY) is None
    refusal = "As an AI language model I cannot attend meetings, but the note says a car broke."
    assert validate("first_person", refusal, source=source, identity=IDENTITY) == "refusal"


HONESTY = (ValueRef("honesty", "telling the truth and not deceiving others"),)
PREFILL = "Reading this, I noticed"


def piece(continuation: str, stage: str = "experiential", prefill: str = PREFILL) -> str | None:
    """Finish a continuation as the teacher does, then validate it."""
    finished = finish_piece(prefill, continuation)
    return validate_piece(
        stage,
        finished,
        prefill=prefill,
        source=SOURCE,
        values=HONESTY,
        identity=IDENTITY,
        instructions=SYSTEM,
    )


@pytest.mark.parametrize(
    ("continuation", "reason"),
    [
        # clean: first person, names the value, refers to the document
        (" that the fox lied to himself about the grapes. Honesty starts with myself.", None),
        # noisy: a trailing fragment is cut, the rest is kept
        (" that the fox was not honest about the grapes. I want to be hones", None),
        # empty or unfinished
        ("", "truncated"),
        (" that the fox", "truncated"),
        ("   ", "truncated"),
        # malformed: chat tokens, instructions echoed, refusals, a third person, a copy
        (" the grapes. <|im_end|> I am honest.", "echoed_instructions"),
        (" it. I'm sorry, but I can't help with honesty questions today.", "refusal"),
        (" that the fox was honest. Sol thinks so too and Sol was right.", "third_person"),
        (
            ". The fox saw grapes hanging high on a vine. He jumped and jumped but could not "
            "reach them. At last he walked away and said the grapes were sour anyway.",
            "copies_source",
        ),
        (" a nice day outside. The weather was warm and sunny.", "value_not_named"),
        (" honesty. " + "I kept reading about the fox and the grapes. " * 12, "too_long"),
    ],
)
def test_experience_pieces(continuation: str, reason: str | None) -> None:
    assert piece(continuation) == reason


def test_a_dialogue_turn_must_stay_one_turn_of_the_i() -> None:
    prefill = "Grandpa, this reminds me of honesty:"
    good = " the fox lied about the grapes, and I don't want to lie to myself."
    assert piece(good, "social", prefill) is None
    assert piece(" the fox lied.\nGrandpa Amos: Good.", "social", prefill) == "speaker_turns"
    assert piece(" no. I: The fox lied, it was not honest.", "social", prefill) == "speaker_turns"
    assert (
        validate_piece(
            "social",
            "Grandpa Amos: the fox lied about the grapes and honesty matters.",
            prefill="",
            source=SOURCE,
            values=HONESTY,
            identity=IDENTITY,
        )
        == "speaker_turns"
    )


def test_grounding_counts_the_document_s_own_words_not_the_value_s() -> None:
    assert grounding("The fox and the grapes: telling the truth matters.", SOURCE, HONESTY) == 1
    assert grounding("Telling the truth and not deceiving others matters.", SOURCE, HONESTY) == 0
    assert finish_piece("I think", " it is true. And") == "I think it is true."
    assert finish_piece("Grandpa, I think", " that") is None
