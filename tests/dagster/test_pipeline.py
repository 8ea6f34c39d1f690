"""The whole pipeline through Dagster, in process, on real Parquet files."""

import json
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from raising_dagster.resources import RaisingResource
from raising_dagster.runner import run_pipeline
from raising_dagster.schema import TRAINING_COLUMNS
from raising_dagster.teacher import TemplateTeacher
from tests.conftest import HONESTY_CODEX, write_jsonl


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as instance:
        yield instance


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
    records = pl.read_parquet(store / "training_ready" / "part-*.parquet")
    assert set(TRAINING_COLUMNS) <= set(records.columns)
    assert records["position"].to_list() == list(range(records.height))
    assert manifest["records"] == records.height
    assert manifest["tokens"] == records["n_tokens"].sum()
    assert [s["records"] for s in manifest["stages"]] == [
        records.filter(pl.col("stage") == s["name"]).height for s in manifest["stages"]
    ]
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
