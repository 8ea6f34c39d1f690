"""Kinds of real text: each is recognised by its rules and gets a framing of its own."""

import polars as pl
import pytest

from raising_dagster.config import load_settings
from raising_dagster.stages import rewrite
from raising_dagster.stages.framing import parse_dialogue
from raising_dagster.stages.kinds import KINDS, infer_kind
from raising_dagster.stages.score import score_docs
from raising_dagster.stages.tasks.social import ROLES_BY_KIND
from raising_dagster.teacher import TemplateTeacher

# Real text of each kind (public-domain sayings and verse; WordNet; Python's documentation).
EXAMPLES = {
    "quotation": "The secret of getting ahead is getting started.\n\t\t-- Mark Twain",
    "poem": (
        "Tyger Tyger, burning bright,\nIn the forests of the night;\n"
        "What immortal hand or eye,\nCould frame thy fearful symmetry?"
    ),
    "joke": (
        "A man walks into a bar with a slab of asphalt under his arm and says: "
        '"A beer please, and one for the road."'
    ),
    "dictionary": "honesty, honestness (n): the quality of being honest",
    "techdoc": (
        "The :func:`len` function returns the number of items of an object. The argument may be "
        "a sequence (such as a string, bytes, tuple, list, or range) or a collection."
    ),
    "qa": (
        "How do I copy a file?\n\nThe shutil module contains a copyfile function that copies "
        "the contents of one file to another."
    ),
}
MORE = {
    "poem": "Whose woods these are I think I know.\nHis house is in the village though;\n"
    "He will not see me stopping here\nTo watch his woods fill up with snow.",
    "joke": "Murphy's Law:\n\tIf anything can go wrong, it will.",
    "dictionary": "descriptor\n   Any object which defines the methods __get__, __set__, or "
    "__delete__.",
    "qa": "Q: What is the capital of France?\nA: Paris, on the Seine.",
    "quotation": '"Be kind, for everyone you meet is fighting a hard battle."',
}


@pytest.mark.parametrize(
    ("kind", "text"), [*EXAMPLES.items(), *MORE.items()], ids=[*EXAMPLES, *(f"{k}-2" for k in MORE)]
)
def test_each_kind_of_real_text_is_recognised(kind: str, text: str) -> None:
    assert infer_kind(text) == kind


def test_a_riddle_with_question_and_answer_lines_is_a_joke_not_a_faq() -> None:
    assert infer_kind("Q: What do you call a fish with no eyes?\nA: A fsh.") == "joke"


def test_a_record_s_own_kind_wins_and_unknown_text_is_an_article() -> None:
    assert infer_kind("x " * 300) == "article"
    assert {"quotation", "poem", "joke", "dictionary", "techdoc", "qa"} <= KINDS


def test_each_kind_has_its_own_framing_and_people() -> None:
    s = load_settings()
    raw = pl.DataFrame(
        {
            "doc_id": list(EXAMPLES),
            "shard": "s",
            "line": range(len(EXAMPLES)),
            "title": None,
            "kind": list(EXAMPLES),
            "text": list(EXAMPLES.values()),
            "meta": "{}",
            "input_sha": "",
            "safety_flag": None,
        },
        schema_overrides={"title": pl.String, "safety_flag": pl.String, "line": pl.Int64},
    )
    teacher = TemplateTeacher(s.identity)
    scored = score_docs(raw, s.codex, s.scoring, s.curriculum)
    fp = rewrite.first_person(raw, scored, teacher, s.codex, seed=5)
    ex = rewrite.experiential(fp, teacher, s.codex, seed=5)
    so = rewrite.social(ex, raw, teacher, s.codex, seed=5)
    openers = {k: t.split('"', 1)[0] for k, t in zip(fp["doc_id"], fp["text"], strict=True)}
    assert "poem" in openers["poem"] or "verses" in openers["poem"]
    assert "joke" in openers["joke"] or "funny" in openers["joke"]
    assert "dictionary" in openers["dictionary"] or "entry" in openers["dictionary"]
    assert "documentation" in openers["techdoc"] or "manual" in openers["techdoc"]
    assert "question" in openers["qa"]
    for row in so.iter_rows(named=True):
        turns = parse_dialogue(row["text"])
        assert turns is not None
        person = next(p for p in s.identity.people if p.name == turns[0][0])
        assert person.role in ROLES_BY_KIND[row["kind"]]
    poem = so.filter(pl.col("kind") == "poem")["text"][0]
    # verse keeps its lines: one per continuation line of the person's turn
    assert "\n    In the forests of the night;" in poem
