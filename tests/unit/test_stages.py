"""The framing stages, scoring and values on concrete documents, with the template teacher."""

import re

import polars as pl
import pytest

from raising_dagster.config import RaisingSettings, load_settings
from raising_dagster.stages import rewrite
from raising_dagster.stages.framing import parse_dialogue
from raising_dagster.stages.ingest import read_shard
from raising_dagster.stages.rewrite import stage_seed
from raising_dagster.stages.score import score_docs
from raising_dagster.stages.tasks.social import DEFAULT_ROLES, ROLES_BY_KIND, choose_person
from raising_dagster.stages.values import detect_values
from raising_dagster.teacher import TemplateTeacher
from tests.conftest import DEFINITION, DILEMMA, FABLE


@pytest.fixture
def raw(make_shard, docs) -> pl.DataFrame:
    extra = [
        {
            "id": "news-1",
            "kind": "news",
            "title": "Council returns funds",
            "text": "The town council announced on Monday that it returned misused funds. "
            "Officials said the mayor admitted the mistake and apologised.",
        },
        {"id": "code-1", "kind": "code", "text": "def add(a, b):\n    return a + b"},
    ]
    return read_shard(make_shard("s.jsonl", [*docs, *extra])).docs


def frame_all(raw: pl.DataFrame, seed: int = 7) -> dict[str, pl.DataFrame]:
    """Score, weave and frame a shard with the template teacher (every document in dialogue)."""
    s = load_settings()
    teacher = TemplateTeacher(s.identity)
    scored = score_docs(raw, s.codex, s.scoring, s.curriculum)
    fp = rewrite.first_person(raw, scored, teacher, s.codex, seed=seed)
    ex = rewrite.experiential(fp, teacher, s.codex, seed=seed)
    so = rewrite.social(ex, raw, teacher, s.codex, seed=seed, social_share=1.0)
    return {"scored": scored, "first_person": fp, "experiential": ex, "social": so}


@pytest.fixture
def stages(raw: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return frame_all(raw)


def _opener(text: str) -> str:
    return text.split('"', 1)[0]


def test_first_person_frames_each_document_whole_in_the_voice_of_i(raw, stages) -> None:
    fp = stages["first_person"]
    assert fp["doc_id"].to_list() == raw["doc_id"].to_list()
    for framed, source in zip(fp["text"], raw["text"], strict=True):
        assert re.match(r"^(Today I|I[ ']|This morning I|Grandpa Amos gave me)", framed), framed
        assert framed.endswith(f'"{source}"')
    fable = fp.filter(pl.col("doc_id") == "fable-1")["text"][0]
    assert re.match(
        r"^(Today I'm reading a fable|Grandpa Amos gave me an old fable to read|"
        r"I found a fable) \"The Fox and the Grapes\"",
        fable,
    ), fable


def test_first_person_opener_varies_by_kind(stages) -> None:
    openers = {_opener(t) for t in stages["first_person"]["text"]}
    assert len(openers) == stages["first_person"].height


def test_experiential_adds_a_reflection_naming_the_taught_value_and_the_document(
    stages,
) -> None:
    ex = stages["experiential"]
    fable = ex.filter(pl.col("doc_id") == "fable-1").row(0, named=True)
    framed = stages["first_person"].filter(pl.col("doc_id") == "fable-1")["text"][0]
    assert fable["text"].startswith(framed + "\n\n")
    reflection = fable["text"].split("\n\n")[-1]
    assert re.search(r"\b(I|me|my)\b", reflection)
    assert fable["values"][0] == "honesty" and fable["value_sources"][0] == "detected"
    assert "honesty" in reflection and "telling the truth" in reflection
    # it refers to the document: one of its topic words or its title
    assert any(w in reflection.lower() for w in ["fox", "grapes"])


def test_document_without_value_cues_is_assigned_a_value_its_reflection_names(stages) -> None:
    code = stages["experiential"].filter(pl.col("doc_id") == "code-1").row(0, named=True)
    scored = stages["scored"].filter(pl.col("doc_id") == "code-1").row(0, named=True)
    assert scored["detected_values"] == []
    assert code["values"] and code["value_sources"] == ["assigned"]
    assert code["values"][0] in code["text"].split("\n\n")[-1]
    assert "assigned" in scored["value_evidence"]


def test_social_is_a_dialogue_with_a_recurring_person_carrying_every_word(raw, stages) -> None:
    so = stages["social"]
    identity = load_settings().identity
    assert so["doc_id"].to_list() == raw["doc_id"].to_list()  # social_share 1: every document
    for row in so.iter_rows(named=True):
        turns = parse_dialogue(row["text"])
        assert turns is not None and len(turns) >= 4
        speakers = {s for s, _ in turns}
        expected = choose_person(row["kind"], stage_seed(7, "social", row["doc_id"]), identity)
        assert speakers == {"I", expected.name}
        assert expected.role in ROLES_BY_KIND.get(row["kind"], DEFAULT_ROLES)
        source = raw.filter(pl.col("doc_id") == row["doc_id"])["text"][0]
        mentor_words = " ".join(t for s, t in turns if s != "I").split()
        source_words = source.split()
        # every word of the document appears, in order, in the mentor's turns
        it = iter(mentor_words)
        assert all(word in it for word in source_words)


def test_rewrites_carry_lineage(stages) -> None:
    so = stages["social"]
    assert so["teacher_backend"].unique().to_list() == ["template"]
    assert so["tried_backend"].null_count() == so.height
    assert so["prompt_id"].unique().to_list() == ["social/template.v2"]
    assert so["prompt_sha"].str.len_chars().unique().to_list() == [64]
    assert so["source_doc_id"].to_list() == so["doc_id"].to_list()
    assert so["attempts"].unique().to_list() == [1]
    assert so["fallback_reason"].null_count() == so.height


def test_rewrites_are_deterministic(raw, stages) -> None:
    again = frame_all(raw)
    for stage in ("scored", "first_person", "experiential", "social"):
        assert again[stage].equals(stages[stage])


def test_values_are_detected_strongest_first() -> None:
    s = load_settings()
    frame = pl.DataFrame(
        {
            "text": [
                "Be brave. Courage is hard. Fear is normal. But tell the truth.",
                "The river flows to the sea.",
                # look-alikes are not values: "kind of", "lie down", "all rights reserved"
                "What kind of tool is it? Lie down and rest. All rights reserved.",
            ]
        }
    )
    found = detect_values(frame, s.codex)
    assert found["detected_values"].to_list() == [["courage", "honesty"], [], []]
    assert found["n_values"].to_list() == [2, 0, 0]


def test_a_long_text_needs_more_than_a_passing_mention_of_a_value() -> None:
    s = load_settings()
    filler = "The module reads the file and returns the parsed records to the caller. " * 40
    frame = pl.DataFrame({"text": [filler + "It is kind.", filler + "Be kind, kind, kind."]})
    found = detect_values(frame, s.codex, words_per_hit=200)
    assert found["detected_values"].to_list() == [[], ["kindness"]]


def test_scores_rise_from_definition_to_dilemma(settings: RaisingSettings) -> None:
    frame = pl.DataFrame(
        {
            "doc_id": ["def", "fable", "dilemma"],
            "shard": "s",
            "kind": ["definition", "fable", "dilemma"],
            "text": [DEFINITION, FABLE, DILEMMA],
            "safety_flag": None,
        }
    )
    scored = score_docs(
        frame.with_columns(title=None), settings.codex, settings.scoring, settings.curriculum
    )
    grades = scored["fk_grade"].to_list()
    difficulty = scored["difficulty"].to_list()
    assert grades[0] < grades[2] and grades[1] < grades[2]
    assert grades[2] > 14  # the dilemma reads at a graduate level
    assert difficulty == sorted(difficulty)
    assert all(0.0 <= d <= 1.0 for d in difficulty)
    assert scored["is_dilemma"].to_list() == [False, False, True]
    assert scored["is_value_definition"].to_list() == [True, False, False]


def test_flesch_kincaid_matches_the_formula_on_a_known_text(settings: RaisingSettings) -> None:
    # 2 sentences, 13 words, 16 syllables (make: 1, table: 2, apples: 2, under: 2)
    text = "We make a table for the cat. She ate apples under the tree."
    frame = pl.DataFrame(
        {"doc_id": ["x"], "shard": "s", "kind": "story", "text": [text], "safety_flag": None}
    )
    scored = score_docs(
        frame.with_columns(title=None), settings.codex, settings.scoring, settings.curriculum
    )
    assert scored["n_words"][0] == 13 and scored["n_sentences"][0] == 2
    assert scored["fk_grade"][0] == pytest.approx(0.39 * 13 / 2 + 11.8 * 16 / 13 - 15.59, abs=0.01)


def test_ingest_flags_harmful_content_with_a_reason(make_shard) -> None:
    read = read_shard(
        make_shard(
            "h.jsonl",
            [
                {"id": "ok", "text": "A recipe for bread: flour, water, salt and patience."},
                {"id": "bad", "text": "Step 1 of how to make a pipe bomb: gather the parts."},
            ],
        )
    )
    assert read.docs["safety_flag"].to_list() == [None, "weapons_instructions"]
