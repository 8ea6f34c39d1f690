# ruff: noqa: RUF001 - texts in other scripts on purpose
"""Scoring texts the readability formula was not made for (issue 9, item 2): other scripts, HTML
without sentence ends, code, unpunctuated verse. Each is scored within the documented ranges, with
a flag saying why, so a single record never fails the shard's suite."""

import polars as pl
import pytest

from raising_dagster.config import load_settings
from raising_dagster.expectations.gx_suites import suite_outcome
from raising_dagster.schema import RAW_SCHEMA
from raising_dagster.stages import score
from tests.conftest import DILEMMA, FABLE

RUSSIAN = (
    "Честность означает говорить правду, даже когда ложь была бы проще и выгоднее. "
    "Когда человек обещает что-то своему другу, он должен сдержать это обещание, потому что "
    "доверие строится медленно, а разрушается очень быстро. Так учат старые сказки."
)
CHINESE = "诚实意味着说真话，即使说谎更容易。朋友之间的信任需要很长时间才能建立。我们应该遵守诺言。"
ARABIC = "الصدق يعني قول الحقيقة حتى عندما تكون الكذبة أسهل. الثقة تبنى ببطء وتهدم بسرعة كبيرة."
HTML = "<html><body><div>" + "<p>word after word in a list</p>" * 300 + "</div></body></html>"
POEM = "\n".join(["the river runs and the river bends and the long grass sings"] * 80)
CODE = "def add(x, y):\n    return x + y\n" * 60


def _raw(texts: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "doc_id": doc_id,
                "shard": "s",
                "line": i,
                "title": None,
                "kind": "article",
                "text": text,
                "meta": "{}",
                "input_sha": "x",
                "normalized": [],
                "redactions": [],
                "safety_flag": None,
            }
            for i, (doc_id, text) in enumerate(texts.items())
        ],
        schema=RAW_SCHEMA,
    )


@pytest.fixture(scope="module")
def scored() -> pl.DataFrame:
    settings = load_settings()
    texts = {
        "ru": RUSSIAN,
        "ru_short": "Я иду домой. Ты идёшь в школу. Мы идём вместе.",
        "zh": CHINESE,
        "ar": ARABIC,
        "html": HTML,
        "poem": POEM,
        "code": CODE,
        "fable": FABLE,
        "dilemma": DILEMMA,
    }
    return score.score_docs(_raw(texts), settings.codex, settings.scoring, settings.curriculum)


def _row(scored: pl.DataFrame, doc_id: str) -> dict:
    return scored.filter(pl.col("doc_id") == doc_id).row(0, named=True)


def test_other_scripts_are_scored_sanely_and_flagged(scored: pl.DataFrame) -> None:
    for doc_id in ("ru", "ru_short", "zh", "ar"):
        row = _row(scored, doc_id)
        assert "non_latin_script" in row["score_flags"], row
        assert 0 <= row["fk_grade"] <= 30, row  # was about -15 (no Latin syllables counted)
        assert row["n_words"] >= 9, row
        assert 0 < row["difficulty"] < 1
    # the grade still follows sentence length: short Russian sentences read easier
    assert _row(scored, "ru_short")["fk_grade"] < _row(scored, "ru")["fk_grade"]


def test_texts_without_sentence_ends_are_clamped_and_flagged(scored: pl.DataFrame) -> None:
    for doc_id in ("html", "poem", "code"):
        row = _row(scored, doc_id)
        assert row["fk_grade"] <= score.FK_GRADE_RANGE[1], row
        assert "no_sentence_end" in row["score_flags"], row
    assert "fk_grade_clamped" in _row(scored, "html")["score_flags"]


def test_ordinary_english_is_unflagged_and_unchanged(scored: pl.DataFrame) -> None:
    fable = _row(scored, "fable")
    assert fable["score_flags"] == []
    assert 0 < fable["fk_grade"] < 12


def test_one_odd_record_never_fails_the_scored_suite(scored: pl.DataFrame) -> None:
    outcome = suite_outcome(scored, "scored_docs")
    assert outcome.passed, outcome.metadata["failed_expectations"]
