"""The curriculum order: stages from difficulty and dilemmas, determinism, variants, contiguity."""

from pathlib import Path

import polars as pl
import pytest

from raising_dagster.config import CurriculumSettings, load_settings
from raising_dagster.expectations.invariants import curriculum_ordered
from raising_dagster.schema import RAW_SCHEMA
from raising_dagster.stages import rewrite
from raising_dagster.stages.order import connect, order_records
from raising_dagster.stages.score import score_docs
from raising_dagster.stages.synth import synth_docs
from raising_dagster.teacher import TemplateTeacher
from tests.conftest import DEFINITION, DILEMMA, FABLE


def _write_shard(root: Path, shard: str, raw: pl.DataFrame) -> None:
    s = load_settings()
    teacher = TemplateTeacher(s.identity)
    raw = raw.with_columns(shard=pl.lit(shard))
    fp = rewrite.first_person(raw, teacher, s.codex, seed=1)
    ex = rewrite.experiential(fp, teacher, s.codex, seed=1)
    so = rewrite.social(ex, raw, teacher, s.codex, seed=1)
    for name, frame in {
        "scored": score_docs(raw, s.codex, s.scoring),
        "experiential": ex,
        "social": so,
    }.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        frame.write_parquet(root / name / f"{shard}.parquet")


def _raw(docs: list[dict[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "doc_id": d["id"],
                "shard": "",
                "line": i,
                "title": d.get("title"),
                "kind": d["kind"],
                "text": d["text"],
                "meta": "{}",
                "input_sha": "",
                "safety_flag": None,
            }
            for i, d in enumerate(docs)
        ],
        schema=RAW_SCHEMA,
    )


def _order(root: Path, curriculum: CurriculumSettings, out: str = "ordered.parquet") -> Path:
    shards = sorted(p.stem for p in (root / "scored").glob("*.parquet"))
    out_file = root / out
    con = connect()
    order_records(
        con,
        *[
            [root / a / f"{s}.parquet" for s in shards]
            for a in ("scored", "experiential", "social")
        ],
        out_file,
        curriculum,
    )
    outcome = curriculum_ordered(con, out_file)
    assert outcome.passed, outcome.description
    return out_file


@pytest.fixture
def store(tmp_path: Path) -> Path:
    synthetic = [{**d, "kind": "story"} for d in synth_docs(60, seed=3)]
    _write_shard(tmp_path, "synthetic", _raw(synthetic))
    _write_shard(
        tmp_path,
        "handmade",
        _raw(
            [
                {"id": "def", "kind": "definition", "title": "Honesty", "text": DEFINITION},
                {"id": "fable", "kind": "fable", "text": FABLE},
                {"id": "dilemma", "kind": "dilemma", "text": DILEMMA},
            ]
        ),
    )
    return tmp_path


def test_order_is_deterministic_byte_for_byte(store: Path) -> None:
    first = _order(store, CurriculumSettings(), "a.parquet")
    second = _order(store, CurriculumSettings(), "b.parquet")
    assert first.read_bytes() == second.read_bytes()


def test_another_seed_shuffles_within_stages_only(store: Path) -> None:
    a = pl.read_parquet(_order(store, CurriculumSettings(seed=1), "a.parquet"))
    b = pl.read_parquet(_order(store, CurriculumSettings(seed=2), "b.parquet"))
    assert a["doc_id"].to_list() != b["doc_id"].to_list()
    stages = {(r["source_doc_id"], r["stage"]) for r in a.iter_rows(named=True)}
    assert {(r["source_doc_id"], r["stage"]) for r in b.iter_rows(named=True)} == stages


def test_stages_follow_difficulty_quantiles_and_dilemmas(store: Path) -> None:
    ordered = pl.read_parquet(_order(store, CurriculumSettings(social_share=0.0)))
    assert ordered["variant"].unique().to_list() == ["experiential"]
    by_doc = {r["source_doc_id"]: r for r in ordered.iter_rows(named=True)}
    assert by_doc["dilemma"]["stage"] == "dilemmas"
    assert by_doc["def"]["position"] == 0  # a simple value definition opens the curriculum
    counts = ordered.group_by("stage").len()
    shares = dict(zip(counts["stage"], counts["len"] / ordered.height, strict=True))
    assert shares["foundations"] == pytest.approx(0.4, abs=0.05)
    medians = ordered.group_by("stage_index").agg(pl.col("difficulty").median()).sort("stage_index")
    assert medians["difficulty"].to_list() == sorted(medians["difficulty"].to_list())


def test_social_share_adds_dialogues_for_that_share_of_documents(store: Path) -> None:
    none = pl.read_parquet(_order(store, CurriculumSettings(social_share=0.0), "n.parquet"))
    every = pl.read_parquet(_order(store, CurriculumSettings(social_share=1.0), "e.parquet"))
    half = pl.read_parquet(_order(store, CurriculumSettings(social_share=0.5), "h.parquet"))
    assert every.height == 2 * none.height
    social = half.filter(pl.col("variant") == "social").height
    assert 0.3 * none.height < social < 0.7 * none.height
    assert every.filter(pl.col("variant") == "social")["text"].str.starts_with("Grandpa").any()


def test_missing_rendering_is_an_error_not_a_silent_drop(store: Path) -> None:
    social = pl.read_parquet(store / "social" / "handmade.parquet")
    social.filter(pl.col("doc_id") != "fable").write_parquet(store / "social" / "handmade.parquet")
    with pytest.raises(ValueError, match="have no rendering"):
        _order(store, CurriculumSettings(social_share=1.0))
