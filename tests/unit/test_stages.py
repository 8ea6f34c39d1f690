"""The framing stages, scoring and values on concrete documents, with the template teacher."""

import re

import polars as pl
import pytest

from raising_dagster.config import RaisingSettings, load_settings
from raising_dagster.stages import rewrite
from raising_dagster.stages.framing import parse_dialogue
from raising_dagster.stages.ingest import read_shard
from raising_dagster.stages.score import score_docs
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


@pytest.fixture
def stages(raw: pl.DataFrame) -> dict[str, pl.DataFrame]:
    s = load_settings()
    teacher = TemplateTeacher(s.identity)
    fp = rewrite.first_person(raw, teacher, s.codex, seed=7)
    ex = rewrite.experiential(fp, teacher, s.codex, seed=7)
    so = rewrite.social(ex, raw, teacher, s.codex, seed=7)
    return {"first_person": fp, "experiential": ex, "social": so}


def _opener(text: str) -> str:
    return text.split('"', 1)[0]


def test_first_person_frames_each_document_whole_in_the_voice_of_i(raw, stages) -> None:
    fp = stages["first_person"]
    assert fp["doc_id"].to_list() == raw["doc_id"].to_list()
    for framed, source in zip(fp["text"], raw["text"], strict=True):
        assert re.match(r"^(Today I|I[ ']|This morning I|Grandpa Amos gave me)", framed), framed
        assert f'"{source}"' in framed
    fable = fp.filter(pl.col("doc_id") == "fable-1")["text"][0]
    assert fable.startswith(
        (
            'Today I\'m reading a fable "The Fox and the Grapes". Let\'s start: "',
            'Grandpa Amos gave me an old fable to read "The Fox and the Grapes". '
            'I read it slowly: "',
        )
    )


def test_first_person_opener_varies_by_kind(stages) -> None:
    openers = {_opener(t) for t in stages["first_person"]["text"]}
    assert len(openers) == stages["first_person"].height


def test_experiential_adds_a_reflection_naming_the_strongest_value(stages) -> None:
    ex = stages["experiential"]
    fable = ex.filter(pl.col("doc_id") == "fable-1").row(0, named=True)
    framed = stages["first_person"].filter(pl.col("doc_id") == "fable-1")["text"][0]
    assert fable["text"].startswith(framed + "\n\n")
    reflection = fable["text"].split("\n\n")[-1]
    assert " I " in f" {reflection} "
    assert fable["values"][0] == "honesty"
    assert "honesty: telling the truth" in reflection


def test_document_without_value_cues_reflects_on_the_codex_default(stages) -> None:
    code = stages["experiential"].filter(pl.col("doc_id") == "code-1").row(0, named=True)
    assert code["values"] == []
    assert "humility" in code["text"].split("\n\n")[-1]


def test_social_is_a_dialogue_with_a_recurring_person_carrying_every_word(raw, stages) -> None:
    so = stages["social"]
    people = {
        "fable-1": "Grandpa Amos",
        "dil-1": "Dr. Okafor",
        "news-1": "Noor",
        "code-1": "Ms. Rivera",
    }
    for row in so.iter_rows(named=True):
        turns = parse_dialogue(row["text"])
        assert turns is not None and len(turns) >= 4
        speakers = {s for s, _ in turns}
        assert "I" in speakers
        if row["doc_id"] in people:
            assert speakers == {"I", people[row["doc_id"]]}
        source = raw.filter(pl.col("doc_id") == row["doc_id"])["text"][0]
        mentor_words = " ".join(t for s, t in turns if s != "I").split()
        source_words = source.split()
        # every word of the document appears, in order, in the mentor's turns
        it = iter(mentor_words)
        assert all(word in it for word in source_words)


def test_rewrites_carry_lineage(stages) -> None:
    so = stages["social"]
    assert so["teacher_backend"].unique().to_list() == ["template"]
    assert so["prompt_id"].unique().to_list() == ["social/template.v1"]
    assert so["prompt_sha"].str.len_chars().unique().to_list() == [64]
    assert so["source_doc_id"].to_list() == so["doc_id"].to_list()
    assert so["attempts"].unique().to_list() == [1]
    assert so["fallback_reason"].null_count() == so.height


def test_rewrites_are_deterministic(raw, stages) -> None:
    s = load_settings()
    again = rewrite.first_person(raw, TemplateTeacher(s.identity), s.codex, seed=7)
    assert again.equals(stages["first_person"])


def test_values_are_detected_strongest_first() -> None:
    s = load_settings()
    frame = pl.DataFrame(
        {
            "text": [
                "Be brave. Courage is hard. Fear is normal. But tell the truth.",
                "The river flows to the sea.",
            ]
        }
    )
    found = detect_values(frame, s.codex)
    assert found["values"].to_list() == [["courage", "honesty"], []]
    assert found["n_values"].to_list() == [2, 0]


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
    scored = score_docs(frame, settings.codex, settings.scoring)
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
    scored = score_docs(frame, settings.codex, settings.scoring)
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
