"""The whole pipeline through Dagster, in process, on real Parquet files."""

import json
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from raising_dagster.resources import RaisingResource
from raising_dagster.runner import run_pipeline
from raising_dagster.schema import TRAINING_COLUMNS
from raising_dagster.stages.tokenize import load_tokenizer, read_tokenized
from raising_dagster.teacher import TemplateTeacher
from tests.conftest import HONESTY_CODEX, write_jsonl


def test_two_shards_publish_an_ordered_corpus_with_manifest(
    tmp_path: Path, landing: Path, instance: DagsterInstance
) -> None:
    write_jsonl(landing / "beta.jsonl", [*json_lines(landing / "beta.jsonl"), "{broken"])
    store = tmp_path / "store"
    raising = RaisingResource(
        landing_dir=str(landing), store_dir=str(store), codex_path=str(HONESTY_CODEX)
    )
    report = run_pipeline(raising, instance)
    assert report.failures == [] and report.published
    assert report.shards == ["alpha.jsonl", "beta.jsonl"]

    manifest = json.loads((store / "training_ready" / "manifest.json").read_text())
    records = pl.read_parquet(store / "training_ready" / "data" / "*.parquet")
    assert set(TRAINING_COLUMNS) <= set(records.columns)
    assert records["position"].to_list() == list(range(records.height))
    assert manifest["records"] == records.height
    assert manifest["approx_tokens"] == records["n_tokens"].sum()
    for stage in manifest["stages"]:
        rows = records.filter(pl.col("stage") == stage["name"])
        assert stage["records"] == rows.height
        assert stage["approx_tokens"] == rows["n_tokens"].sum()
        if rows.height:
            assert (stage["first_position"], stage["last_position"]) == (
                rows["position"].min(),
                rows["position"].max(),
            )
            for value, share in stage["value_coverage"].items():
                expressed = rows["values"].list.contains(value).mean()
                assert share == pytest.approx(expressed, abs=1e-5)
            assert stage["difficulty_quantiles"]["p50"] == pytest.approx(
                rows["difficulty"].quantile(0.5, "linear"), abs=1e-4
            )
    assert records.filter(pl.col("variant") == "experiential").height == 6
    shards = {s["shard"]: s for s in manifest["input_shards"]}
    assert shards["beta.jsonl"]["records_in"] == 4
    assert shards["beta.jsonl"]["quarantined_by_reason"] == {"invalid_json": 1}
    quarantine = pl.read_parquet(store / "quarantine" / "beta.jsonl.parquet")
    assert quarantine.select("line", "reason").rows() == [(4, "invalid_json")]
    assert (
        records["source_doc_id"]
        .is_in(["fable-1", "def-1", "dil-1", "fable-1-b", "def-1-b", "dil-1-b"])
        .all()
    )

    assert instance.get_materialized_partitions(AssetKey("scored_docs")) == {
        "alpha.jsonl",
        "beta.jsonl",
    }
    assert instance.get_latest_materialization_event(AssetKey("training_ready_corpus"))
    _assert_standard_table_metadata(instance, store)


def _assert_standard_table_metadata(instance: DagsterInstance, store: Path) -> None:
    """Every materialization carries `dagster/row_count` and `dagster/column_schema`, true to the
    files it wrote (the catalog shows them without custom keys)."""
    files = {
        "ordered_docs": [store / "ordered_docs" / "ordered.parquet"],
        "training_ready_corpus": [store / "training_ready" / "data" / "*.parquet"],
    }
    for asset in ("raw_docs", "first_person_docs", "experiential_docs", "social_docs"):
        files[asset] = [store / asset / "alpha.jsonl.parquet", store / asset / "beta.jsonl.parquet"]
    files["scored_docs"] = [store / "scored_docs" / f"{s}.jsonl.parquet" for s in ("alpha", "beta")]
    for asset, paths in files.items():
        events = instance.fetch_materializations(AssetKey(asset), limit=10).records
        assert len(events) == len(paths), asset
        by_partition = {e.partition_key: e.asset_materialization.metadata for e in events}
        for path in paths:
            metadata = (
                by_partition[path.name.removesuffix(".parquet")]
                if len(paths) > 1
                else (next(iter(by_partition.values())))
            )
            frame = pl.read_parquet(path)
            assert metadata["dagster/row_count"].value == frame.height, asset
            schema = metadata["dagster/column_schema"].value
            assert [c.name for c in schema.columns] == frame.columns, asset
            assert [c.type for c in schema.columns] == [str(t) for t in frame.dtypes], asset
            if len(paths) > 1:
                assert metadata["dagster/partition_row_count"].value == frame.height
                declared = defs_schema(asset)
                assert [c.name for c in declared.columns] == frame.columns, asset


def defs_schema(asset: str):
    from raising_dagster.definitions import defs

    return defs.resolve_asset_graph().get(AssetKey(asset)).metadata["dagster/column_schema"]


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class UnframedTeacher(TemplateTeacher):
    """Returns the social stage's input unchanged: a dialogue that is no dialogue."""

    def rewrite(self, stage, requests):
        rewrites = super().rewrite(stage, requests)
        if stage != "social":
            return rewrites
        return [
            r.__class__(**{**{s: getattr(r, s) for s in r.__slots__}, "text": q.text})
            for r, q in zip(rewrites, requests, strict=True)
        ]


def test_failing_blocking_check_stops_publication_and_keeps_last_good_corpus(
    tmp_path: Path, landing: Path, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    raising = RaisingResource(
        landing_dir=str(landing), store_dir=str(store), codex_path=str(HONESTY_CODEX)
    )
    assert run_pipeline(raising, instance).published
    good = (store / "training_ready" / "manifest.json").read_bytes()

    monkeypatch.setattr(
        "raising_dagster.resources.teacher.build_teacher",
        lambda settings: UnframedTeacher(settings.identity),
    )
    report = run_pipeline(raising, instance)
    assert not report.published
    assert any("every_record_is_dialogue_with_i_speaking" in f for f in report.failures)
    assert any("fable-1" in f for f in report.failures)  # the offending records are named
    assert (store / "training_ready" / "manifest.json").read_bytes() == good


def test_token_files_decode_back_to_the_parquet_texts(
    tmp_path: Path, landing: Path, instance: DagsterInstance
) -> None:
    store = tmp_path / "store"
    assert run_pipeline(
        RaisingResource(
            landing_dir=str(landing), store_dir=str(store), codex_path=str(HONESTY_CODEX)
        ),
        instance,
    ).published
    out = store / "training_ready"
    manifest = json.loads((out / "manifest.json").read_text())
    records = pl.read_parquet(out / "data" / "*.parquet").sort("position")
    tokenizer, _ = load_tokenizer(None)
    sequences = [
        ids for prefix in manifest["tokenized"]["prefixes"] for ids in read_tokenized(out / prefix)
    ]
    assert len(sequences) == records.height
    eos = tokenizer.token_to_id(manifest["tokenized"]["eos_token"])
    for ids, text in zip(sequences, records["text"], strict=True):
        assert ids[-1] == eos
        assert tokenizer.decode(ids[:-1].tolist(), skip_special_tokens=False) == text
    assert manifest["tokens"] == sum(len(s) for s in sequences)
    stage_tokens = {s["name"]: s["tokens"] for s in manifest["stages"]}
    for name, total in stage_tokens.items():
        positions = records.with_row_index().filter(pl.col("stage") == name)["index"]
        assert total == sum(len(sequences[i]) for i in positions)
    for plot in manifest["plots"]:
        assert (out / plot).read_bytes().startswith(b"\x89PNG")


def test_adding_a_shard_keeps_the_in_stage_order_of_the_others(
    tmp_path: Path, landing: Path, instance: DagsterInstance, docs: list[dict]
) -> None:
    store = tmp_path / "store"
    raising = RaisingResource(
        landing_dir=str(landing), store_dir=str(store), codex_path=str(HONESTY_CODEX)
    )
    assert run_pipeline(raising, instance).published
    before = pl.read_parquet(store / "training_ready" / "data" / "*.parquet")
    write_jsonl(
        landing / "gamma.jsonl",
        [{**d, "id": d["id"] + "-g", "text": d["text"] + " (told a third time)"} for d in docs],
    )
    assert run_pipeline(raising, instance).published
    after = pl.read_parquet(store / "training_ready" / "data" / "*.parquet")
    manifest = json.loads((store / "training_ready" / "manifest.json").read_text())
    assert [s["shard"] for s in manifest["input_shards"]] == [
        "alpha.jsonl",
        "beta.jsonl",
        "gamma.jsonl",
    ]
    assert after.height > before.height
    same_stage = before.join(after, on="doc_id", suffix="_after").filter(
        pl.col("stage") == pl.col("stage_after")
    )
    for stage in same_stage["stage"].unique():
        rows = same_stage.filter(pl.col("stage") == stage)
        assert (
            rows.sort("position")["doc_id"].to_list()
            == rows.sort("position_after")["doc_id"].to_list()
        )


def test_tokenizer_off_publishes_without_token_files(
    tmp_path: Path, landing: Path, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAISING_TOKENIZER__ENABLED", "false")
    store = tmp_path / "store"
    raising = RaisingResource(
        landing_dir=str(landing), store_dir=str(store), codex_path=str(HONESTY_CODEX)
    )
    report = run_pipeline(raising, instance)
    assert report.failures == [] and report.published
    manifest = json.loads((store / "training_ready" / "manifest.json").read_text())
    assert manifest["tokenized"] == {"enabled": False} and manifest["tokens"] is None
    assert not (store / "training_ready" / "tokens").exists()
    assert all("tokens" not in stage for stage in manifest["stages"])
