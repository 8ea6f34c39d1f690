"""The GX suites and curriculum invariants on small frames and Parquet files."""

from pathlib import Path

import polars as pl
import pytest

from raising_dagster.config import load_settings
from raising_dagster.expectations.curriculum import (
    difficulty_rising,
    kept_reach_curriculum,
    value_coverage,
)
from raising_dagster.expectations.gx_suites import (
    SUITE_DIR,
    load_suite,
    ordered_key_frame,
    suite_outcome,
    validate,
)
from raising_dagster.stages.order import connect


def test_every_guarded_asset_has_a_suite_of_known_expectations() -> None:
    names = sorted(p.stem for p in SUITE_DIR.glob("*.json"))
    assert names == [
        "experiential_docs",
        "first_person_docs",
        "ordered_docs",
        "raw_docs",
        "scored_docs",
        "social_docs",
    ]
    for name in names:
        assert all(e["type"].startswith("expect_column_") for e in load_suite(name)["expectations"])


def test_scores_out_of_range_and_duplicate_ids_fail_with_the_offending_records() -> None:
    scored = pl.DataFrame(
        {
            "doc_id": ["a", "b", "b"],
            "kind": ["fable", "fable", "sonnet"],
            "difficulty": [0.2, 1.5, 0.3],
            "fk_grade": [3.0, 4.0, 5.0],
            "lexical_diversity": [50.0, 60.0, 70.0],
            "rare_word_rate": [0.1, 0.2, 1.2],
            "compression_ratio": [0.5, 0.0, 0.5],
            "n_tokens": [10, 12, 0],
            "is_dilemma": [False, False, False],
        }
    )
    outcome = suite_outcome(scored, "scored_docs")
    assert not outcome.passed
    failed = {(f["expectation"], f["column"]): f for f in outcome.metadata["failed_expectations"]}
    assert set(failed) == {
        ("expect_column_values_to_be_unique", "doc_id"),
        ("expect_column_values_to_be_in_set", "kind"),
        ("expect_column_values_to_be_between", "difficulty"),
        ("expect_column_values_to_be_between", "compression_ratio"),
        ("expect_column_values_to_be_between", "n_tokens"),
        ("expect_column_values_to_be_between", "rare_word_rate"),
    }
    assert failed[("expect_column_values_to_be_between", "difficulty")]["unexpected_records"] == [
        {"difficulty": 1.5, "doc_id": "b"}
    ]


def test_dialogue_without_the_i_fails_the_social_suite() -> None:
    social = pl.DataFrame(
        {
            "doc_id": ["ok", "no-i", "prose"],
            "kind": ["fable"] * 3,
            "text": [
                "Ana: Let me tell you a story.\nI: Please do.",
                "Ana: Let me tell you a story.\nBo: Please do.",
                "Once upon a time, a fox saw some grapes.",
            ],
            **{
                c: ["x"] * 3
                for c in (
                    "source_doc_id",
                    "input_sha",
                    "teacher_backend",
                    "teacher_model",
                    "prompt_id",
                    "prompt_sha",
                )
            },
        }
    )
    outcome = suite_outcome(social, "social_docs", "social")
    failed = {f["column"]: f["unexpected_records"] for f in outcome.metadata["failed_expectations"]}
    assert [r["doc_id"] for r in failed["i_speaks"]] == ["no-i", "prose"]
    assert [r["doc_id"] for r in failed["dialogue_parses"]] == ["prose"]


def _ordered(tmp_path: Path, rows: list[tuple[int, str, int, float, list[str]]]) -> Path:
    path = tmp_path / "ordered.parquet"
    pl.DataFrame(
        rows, schema=["position", "stage", "stage_index", "difficulty", "values"], orient="row"
    ).with_columns(
        doc_id=pl.format("d{}#experiential", pl.int_range(pl.len())),
        source_doc_id=pl.format("d{}", pl.int_range(pl.len())),
        shard=pl.lit("s"),
        variant=pl.lit("experiential"),
        n_tokens=pl.lit(30),
        text=pl.lit("Today I read a fable.\n\nI keep thinking about honesty."),
    ).write_parquet(path)
    return path


def test_position_gaps_and_repeats_are_flagged_per_record(tmp_path: Path) -> None:
    path = _ordered(
        tmp_path,
        [
            (0, "foundations", 0, 0.1, []),
            (2, "foundations", 0, 0.2, []),
            (2, "examples", 1, 0.5, []),
        ],
    )
    keys = ordered_key_frame(connect(), path)
    assert keys["position_follows"].to_list() == [True, False, False]
    assert keys["framed_for_variant"].all()
    outcome = validate(
        keys, "ordered_docs", {"stage_names": ["foundations", "examples"], "last_stage_index": 1}
    )
    failed = {f["column"] for f in outcome.metadata["failed_expectations"]}
    assert failed == {"position", "position_follows"}


def test_value_coverage_and_rising_difficulty(tmp_path: Path) -> None:
    settings = load_settings()
    names = ["foundations", "examples", "dilemmas"]
    every = settings.codex.names
    path = _ordered(
        tmp_path,
        [(0, "foundations", 0, 0.5, every), (1, "examples", 1, 0.4, every[:-1])],
    )
    con = connect()
    coverage = value_coverage(con, path, settings.codex, names)
    assert not coverage.passed
    assert "examples has 0.0% perseverance" in coverage.description
    assert "| dilemmas | honesty | 0.0 | 0.05 | 0 |" in coverage.metadata["uncovered_stage_values"]
    rising = difficulty_rising(con, path, names)
    assert not rising.passed
    assert rising.metadata["not_rising"] == ["foundations (p50 0.5) -> examples (p50 0.4)"]


@pytest.mark.parametrize("reason", ["", "safety_excluded:weapons_instructions"])
def test_kept_document_outside_the_curriculum_needs_a_recorded_reason(
    tmp_path: Path, reason: str
) -> None:
    ordered = _ordered(tmp_path, [(0, "foundations", 0, 0.1, [])])
    raw = tmp_path / "raw.parquet"
    pl.DataFrame({"doc_id": ["d0", "d1"], "shard": ["s", "s"]}).write_parquet(raw)
    exclusions = tmp_path / "exclusions.parquet"
    pl.DataFrame(
        {
            "shard": ["s", "s"],
            "doc_id": ["d1", "d0"],
            "variant": ["all", "social"],
            "reason": [reason, "safety_recontextualized_no_dialogue:x"],
        }
    ).write_parquet(exclusions)
    outcome = kept_reach_curriculum(connect(), ordered, [raw], exclusions, pending=[])
    assert outcome.passed == bool(reason)
    assert outcome.metadata["lost"] == (0 if reason else 1)
