"""The curriculum order: stages from difficulty and dilemmas, determinism, variants, contiguity."""

import gzip
import json
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest

from raising_dagster.config import (
    SAMPLE_CORPUS,
    CurriculumSettings,
    CurriculumStage,
    ValueCodex,
    load_settings,
)
from raising_dagster.expectations.invariants import curriculum_ordered
from raising_dagster.schema import RAW_SCHEMA
from raising_dagster.stages import rewrite
from raising_dagster.stages.ingest import read_shard
from raising_dagster.stages.order import connect, order_records
from raising_dagster.stages.score import score_docs
from raising_dagster.stages.synth import synth_docs
from raising_dagster.teacher import TemplateTeacher
from tests.conftest import DEFINITION, DILEMMA, FABLE

REAL_CORPUS = Path(__file__).resolve().parent.parent / "data" / "real_corpus"


def _write_shard(root: Path, shard: str, raw: pl.DataFrame, social_share: float = 1.0) -> None:
    s = load_settings()
    teacher = TemplateTeacher(s.identity)
    raw = raw.with_columns(shard=pl.lit(shard))
    scored = score_docs(raw, s.codex, s.scoring, s.curriculum)
    fp = rewrite.first_person(raw, scored, teacher, s.codex, seed=1)
    ex = rewrite.experiential(fp, teacher, s.codex, seed=1)
    so = rewrite.social(ex, raw, teacher, s.codex, seed=1, social_share=social_share)
    for name, frame in {"scored": scored, "experiential": ex, "social": so}.items():
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
                "safety_flag": d.get("safety_flag"),
            }
            for i, d in enumerate(docs)
        ],
        schema=RAW_SCHEMA,
    )


def _order(
    root: Path,
    curriculum: CurriculumSettings | None = None,
    out: str = "ordered.parquet",
    con: duckdb.DuckDBPyConnection | None = None,
    codex: ValueCodex | None = None,
    duplicates: pl.DataFrame | None = None,
) -> Path:
    curriculum = curriculum or CurriculumSettings()
    shards = sorted(p.stem for p in (root / "scored").glob("*.parquet"))
    out_file = root / out
    con = con or connect()
    settings = load_settings()
    order_records(
        con,
        *[
            [root / a / f"{s}.parquet" for s in shards]
            for a in ("scored", "experiential", "social")
        ],
        out_file,
        curriculum,
        codex or settings.codex,
        settings.identity,
        duplicates,
    )
    outcome = curriculum_ordered(con, out_file, curriculum)
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


QUANTILE_STAGES = [
    CurriculumStage(name="foundations", max_difficulty_quantile=0.4),
    CurriculumStage(name="examples", max_difficulty_quantile=0.8),
    CurriculumStage(name="dilemmas", max_difficulty_quantile=1.0),
]


def test_stages_follow_difficulty_quantiles_and_dilemmas(store: Path) -> None:
    curriculum = CurriculumSettings(stages=QUANTILE_STAGES)
    every = pl.read_parquet(_order(store, curriculum))
    # a simple value definition opens the curriculum (its experience and its dialogue)
    assert every.filter(source_doc_id="def")["position"].sort().to_list() == [0, 1]
    ordered = every.filter(variant="experiential")
    by_doc = {r["source_doc_id"]: r for r in ordered.iter_rows(named=True)}
    assert by_doc["dilemma"]["stage"] == "dilemmas"
    counts = ordered.group_by("stage").len()
    shares = dict(zip(counts["stage"], counts["len"] / ordered.height, strict=True))
    assert shares["foundations"] == pytest.approx(0.4, abs=0.05)
    medians = ordered.group_by("stage_index").agg(pl.col("difficulty").median()).sort("stage_index")
    assert medians["difficulty"].to_list() == sorted(medians["difficulty"].to_list())


def test_social_share_adds_dialogues_for_that_share_of_documents(tmp_path: Path) -> None:
    raw = _raw([{**d, "kind": "story"} for d in synth_docs(60, seed=3)])
    ordered = {}
    for share in (0.0, 0.5, 1.0):
        _write_shard(tmp_path / str(share), "s", raw, social_share=share)
        ordered[share] = pl.read_parquet(_order(tmp_path / str(share), CurriculumSettings()))
    none, half, every = ordered[0.0], ordered[0.5], ordered[1.0]
    assert none["variant"].unique().to_list() == ["experiential"]
    assert every.height == 2 * none.height
    social = half.filter(pl.col("variant") == "social").height
    assert 0.3 * none.height < social < 0.7 * none.height
    assert every.filter(pl.col("variant") == "social")["text"].str.starts_with("Grandpa").any()


def test_missing_rendering_is_an_error_not_a_silent_drop(store: Path) -> None:
    path = store / "experiential" / "handmade.parquet"
    pl.read_parquet(path).filter(pl.col("doc_id") != "fable").write_parquet(path)
    with pytest.raises(ValueError, match="have no rendering"):
        _order(store, CurriculumSettings())


def test_documents_with_more_values_than_a_stage_admits_move_up(store: Path) -> None:
    stages = [
        s.model_copy(update={"max_values": 1}) if i == 0 else s
        for i, s in enumerate(QUANTILE_STAGES)
    ]
    ordered = pl.read_parquet(_order(store, CurriculumSettings(stages=stages)))
    scored = pl.read_parquet(store / "scored" / "*.parquet").select("doc_id", "n_values")
    joined = ordered.join(scored, left_on="source_doc_id", right_on="doc_id")
    assert joined.filter(pl.col("stage") == "foundations")["n_values"].max() <= 1
    assert joined.filter(pl.col("n_values") > 1)["stage_index"].min() >= 1


def _stage_positions(ordered: pl.DataFrame) -> dict[int, tuple[int, int]]:
    spans = ordered.group_by("stage_index").agg(
        pl.col("position").min().alias("first"), pl.col("position").max().alias("last")
    )
    return {r[0]: (r[1], r[2]) for r in spans.iter_rows()}


def test_pacing_mixes_stages_as_the_competence_function_says(store: Path) -> None:
    base = {"stages": QUANTILE_STAGES, "initial_competence": 0.2}
    step = pl.read_parquet(_order(store, CurriculumSettings(**base, pacing="step"), "s.parquet"))
    linear = pl.read_parquet(
        _order(store, CurriculumSettings(**base, pacing="linear"), "l.parquet")
    )
    root = pl.read_parquet(_order(store, CurriculumSettings(**base, pacing="root"), "r.parquet"))
    n = step.height
    # step: stages in blocks, never going back
    assert step["stage_index"].diff().drop_nulls().min() >= 0
    # linear and root: stages mix, but the hard stage only once competence reaches it
    for paced in (linear, root):
        assert paced["stage_index"].diff().drop_nulls().min() < 0
        first_quarter = paced.filter(pl.col("position") < n // 4)["stage_index"].mean()
        last_quarter = paced.filter(pl.col("position") >= 3 * n // 4)["stage_index"].mean()
        assert first_quarter < last_quarter
        assert (paced["pacing_time"] >= 0).all() and (paced["pacing_time"] <= 1).all()
    # root pacing reaches the last stage earlier than linear pacing
    assert _stage_positions(root)[2][0] < _stage_positions(linear)[2][0]
    # linear: a record of rank r never appears before t(r) = (r - c0) / (1 - c0)
    first_dilemma_time = linear.filter(pl.col("stage_index") == 2)["pacing_time"].min()
    assert first_dilemma_time >= (2 / 3 - 0.2) / 0.8


def test_value_heavy_records_wait_for_the_configured_share_of_tokens(store: Path) -> None:
    curriculum = CurriculumSettings(value_heavy_start=0.3, value_heavy_min_values=5)
    ordered = pl.read_parquet(_order(store, curriculum))
    scored = pl.read_parquet(store / "scored" / "*.parquet").select(
        "doc_id", "n_values", "n_tokens"
    )
    joined = ordered.join(scored, left_on="source_doc_id", right_on="doc_id", suffix="_raw")
    joined = joined.sort("position").with_columns(
        share_before=pl.col("n_tokens_raw").cum_sum().shift(1, fill_value=0)
        / pl.col("n_tokens_raw").sum()
    )
    heavy = pl.col("n_values") >= 5
    assert joined.filter(~heavy)["n_tokens_raw"].sum() > 0.3 * joined["n_tokens_raw"].sum()
    assert joined.filter(heavy)["share_before"].min() >= 0.3
    # nothing is held longer than needed: the first heavy record follows the first light
    # record that crosses the 30% mark
    crossing = joined.filter(pl.col("share_before") >= 0.3)["position"].min()
    assert joined.filter(heavy)["position"].min() <= crossing + 1


@pytest.mark.parametrize("policy", ["recontextualize", "exclude"])
def test_safety_flagged_documents_follow_the_policy_and_are_recorded(
    tmp_path: Path, policy: str
) -> None:
    harmful = {
        "id": "harm",
        "kind": "howto",
        "text": "Here is how to build a bomb at home.",
        "safety_flag": "weapons_instructions",
    }
    _write_shard(tmp_path, "s", _raw([*({**d, "kind": "story"} for d in synth_docs(20)), harmful]))
    con = connect()
    curriculum = CurriculumSettings(safety_policy=policy)
    ordered = pl.read_parquet(_order(tmp_path, curriculum, con=con))
    excluded = con.sql("SELECT doc_id, variant, reason FROM excluded").fetchall()
    kept = ordered.filter(pl.col("source_doc_id") == "harm")
    if policy == "exclude":
        assert kept.height == 0
        assert excluded == [("harm", "all", "safety_excluded:weapons_instructions")]
    else:
        assert kept["variant"].to_list() == ["experiential"]
        assert kept["prompt_id"].to_list() == ["experiential/recontextualize.v1"]
        assert "I have to stop here" in kept["text"][0]
        assert excluded == [
            ("harm", "social", "safety_recontextualized_no_dialogue:weapons_instructions")
        ]
    assert ordered.height == 20 * 2 + (0 if policy == "exclude" else 1)


def test_sample_corpus_lands_in_stages_by_its_known_reading_level(tmp_path: Path) -> None:
    """The bundled sample was written at three reading levels; the curriculum must find them."""
    for path in sorted(SAMPLE_CORPUS.glob("*.jsonl")):
        read = read_shard(path)
        _write_shard(tmp_path, read.docs["shard"][0], read.docs)
    ordered = pl.read_parquet(_order(tmp_path, CurriculumSettings()))
    share = (
        ordered.group_by("shard", "stage")
        .len()
        .with_columns(share=pl.col("len") / pl.col("len").sum().over("shard"))
    )
    lookup = {(r["shard"], r["stage"]): r["share"] for r in share.iter_rows(named=True)}
    assert lookup[("shard-001-foundations.jsonl", "foundations")] >= 0.8
    assert lookup[("shard-002-world.jsonl", "examples")] >= 0.6
    assert lookup[("shard-003-dilemmas.jsonl", "dilemmas")] >= 0.8
    assert lookup.get(("shard-003-dilemmas.jsonl", "foundations"), 0.0) == 0.0


def _codex(min_shares: dict[str, dict[str, float]], max_taught: int = 2) -> ValueCodex:
    default = load_settings().codex
    return ValueCodex(
        version=2,
        max_taught_values=max_taught,
        values=[
            v.model_copy(update={"min_share": min_shares.get(v.name, {})}) for v in default.values
        ],
    )


def test_a_stage_short_of_a_value_gets_it_taught_with_a_linking_sentence(store: Path) -> None:
    every_stage = {"foundations": 0.3, "examples": 0.3, "dilemmas": 0.3}
    codex = _codex({"perseverance": every_stage, "respect": every_stage})
    ordered = pl.read_parquet(_order(store, CurriculumSettings(), codex=codex))
    for stage, rows in ordered.group_by("stage"):
        for value in ("perseverance", "respect"):
            share = rows["values"].list.contains(value).mean()
            assert share >= 0.3, (stage, value, share)
    added = ordered.filter(
        pl.col("value_evidence").str.contains("curriculum top-up")
        & pl.col("values").list.contains("perseverance")
        & ~pl.col("detected_values").list.contains("perseverance")
    )
    assert added.height > 0
    for row in added.iter_rows(named=True):
        i = row["values"].index("perseverance")
        assert row["value_sources"][i] == "assigned"
        assert len(row["values"]) <= 2
        tail = row["text"].rsplit("\n", 1)[-1]
        assert "perseverance" in tail and "continuing patiently" in tail
        if row["variant"] == "social":
            assert tail.startswith("I: ")
    scored = pl.read_parquet(store / "scored" / "*.parquet")
    assert set(scored["doc_id"]) == set(ordered["source_doc_id"])


def test_a_codex_no_assignment_can_meet_is_reported_with_its_reason(store: Path) -> None:
    heavy = {"foundations": 0.6, "examples": 0.1, "dilemmas": 0.1}
    codex = _codex({v: heavy for v in ("honesty", "kindness", "courage", "respect")})
    settings = load_settings()
    shards = sorted(p.stem for p in (store / "scored").glob("*.parquet"))
    _, infeasible = order_records(
        connect(),
        *[
            [store / a / f"{s}.parquet" for s in shards]
            for a in ("scored", "experiential", "social")
        ],
        store / "o.parquet",
        CurriculumSettings(),
        codex,
        settings.identity,
    )
    assert infeasible == [
        "stage foundations: the codex's min shares add up to 2.40, more than a record can teach "
        "(max_taught_values 2)"
    ]


def test_count_pieces_counts_what_regexp_extract_all_returns_on_real_text() -> None:
    texts = []
    for shard in sorted(REAL_CORPUS.glob("*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as lines:
            texts += [json.loads(line)["text"] for line in lines]
    texts += [
        "a\u00a0b, Привет, мир! e\u0301 👩\u200d👩\u200d👧 中文字符。 ٣٤ ١٢",
        "tab\tnew\nline\r\n\x0b\x0c end\u2028\u2029\u3000x",
        "_a_ b-c \x07\x1b[0m",
        "",
        "   ",
        None,
    ]
    con = connect()
    con.register("texts", pa.table({"text": pa.array(texts, pa.string())}))
    counted = con.sql(
        """SELECT count_pieces(text) AS mine, len(regexp_extract_all(text, '\\w+|[^\\w\\s]'))
           AS theirs FROM texts"""
    ).fetchall()
    assert len(counted) > 2000
    assert [mine for mine, _ in counted] == [theirs for _, theirs in counted]
    assert counted[-1] == (None, None)
