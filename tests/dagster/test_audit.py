"""Record-level lineage for audits (issue 11): versioned publications, the lineage table, `raising
trace`, `raising withdraw`, left-out shards, `raising report`. Real runs on a real instance; the
CLI as a user runs it (in process through click's runner, or a subprocess where it matters)."""

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance, RunsFilter, TableMetadataValue

from raising_dagster.cli import main
from raising_dagster.definitions import build_definitions
from raising_dagster.resources import RaisingResource
from raising_dagster.runner import RUN_CONFIG, run_pipeline
from raising_dagster.stages.lineage import LINEAGE_FILE, trace
from raising_dagster.stages.report import REPORT_FILE
from raising_dagster.store import StoreLayout, list_publications
from tests.conftest import write_jsonl
from tests.dagster.test_quality_gates import unframed_fables


@pytest.fixture
def publish(raising: RaisingResource, instance: DagsterInstance) -> Callable[[], Path]:
    def run() -> Path:
        report = run_pipeline(raising, instance)
        assert report.published, report.failures
        return (Path(raising.store_dir) / "training_ready").resolve()

    return run


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _records(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "data" / "*.parquet").sort("position")


def test_each_publication_is_kept_and_training_ready_points_at_the_current_one(
    raising: RaisingResource, instance: DagsterInstance, publish: Callable[[], Path]
) -> None:
    store = Path(raising.store_dir)
    first = publish()
    second = publish()
    assert first != second and first.parent == second.parent == store / "publications"
    link = store / "training_ready"
    assert link.is_symlink() and link.resolve() == second
    assert (link / "data").is_dir() and (link / "manifest.json").exists()
    # the past publication is whole: its manifest, card, records, lineage, report
    for folder in (first, second):
        for name in ("manifest.json", "README.md", "publication.json", LINEAGE_FILE, REPORT_FILE):
            assert (folder / name).exists(), (folder, name)
    info = json.loads((second / "publication.json").read_text())
    assert info["previous"] == first.name
    # the codex, identity card and settings it used: copies and their hashes
    codex = (second / "audit" / "codex.yaml").read_text()
    assert "honesty" in codex
    assert info["copies"]["audit/codex.yaml"] == hashlib.sha256(codex.encode()).hexdigest()
    manifest = json.loads((second / "manifest.json").read_text())
    assert info["codex_sha"] == manifest["codex_sha"]
    # the run ids are the instance's runs: the publishing run and each shard's raise_shard run
    runs = {r.run_id: r.job_name for r in instance.get_runs()}
    assert runs[info["run_id"]] == "publish_curriculum"
    for shard, by_stage in info["stage_runs"].items():
        assert set(by_stage) == {"raw", "scored", "first_person", "experiential", "social"}
        assert {runs[r] for ids in by_stage.values() for r in ids} == {"raise_shard"}, shard

    code, listed = _cli("publications", "list", "--out", str(store))
    assert code == 0 and first.name in listed and f"* {second.name}" in listed
    code, pruned = _cli("publications", "prune", "--keep", "0", "--out", str(store))
    assert code == 0 and first.name in pruned and second.name not in pruned
    assert [p["id"] for p in list_publications(StoreLayout(store))] == [second.name]
    assert link.resolve() == second


def test_a_corpus_published_before_publications_were_kept_becomes_one(
    raising: RaisingResource, publish: Callable[[], Path]
) -> None:
    store = Path(raising.store_dir)
    folder = publish()
    link = store / "training_ready"
    link.unlink()
    os.replace(folder, link)  # the old layout: a plain folder
    again = publish()
    legacy = [p for p in list_publications(StoreLayout(store)) if p["id"].startswith("legacy-")]
    assert len(legacy) == 1 and (Path(legacy[0]["path"]) / "manifest.json").exists()
    assert link.is_symlink() and link.resolve() == again


def test_trace_follows_a_record_through_every_stage_to_its_runs(
    raising: RaisingResource, instance: DagsterInstance, publish: Callable[[], Path]
) -> None:
    folder = publish()
    records = _records(folder)
    social = records.filter(pl.col("variant") == "social").row(0, named=True)
    found = trace(folder, social["doc_id"])
    (chain,) = found["documents"]
    assert (chain["shard"], chain["source_doc_id"]) == (social["shard"], social["source_doc_id"])
    raw = pl.read_parquet(Path(raising.store_dir) / "raw_docs" / f"{social['shard']}.parquet")
    source = raw.filter(pl.col("doc_id") == social["source_doc_id"]).row(0, named=True)
    assert chain["source"]["text"] == source["text"] and chain["source"]["line"] == source["line"]
    stats = json.loads(
        (Path(raising.store_dir) / "raw_docs" / f"{social['shard']}.stats.json").read_text()
    )
    assert chain["source"]["file_sha"] == stats["content_sha"]
    assert [s["stage"] for s in chain["stages"]] == ["first_person", "experiential", "social"]
    runs = {r.run_id: r for r in instance.get_runs()}
    for stage in chain["stages"]:
        assert stage["prompt_id"] and stage["prompt_sha"] and stage["teacher_model"]
        assert stage["attempts"] >= 1 and stage["cache_hit"] is not None
        run = runs[stage["run_id"]]
        assert run.job_name == "raise_shard" and run.tags["dagster/partition"] == social["shard"]
    assert chain["scores"]["difficulty"] == pytest.approx(social["difficulty"])
    assert {r["doc_id"] for r in chain["training_records"]} == {
        social["doc_id"],
        social["doc_id"].replace("#social", "#experiential"),
    }
    # a position and a raw document id find the same document
    assert trace(folder, str(social["position"]))["documents"][0]["source"] == chain["source"]
    raw_id = f"{social['shard']}/{social['source_doc_id']}"
    assert trace(folder, raw_id)["documents"][0]["stages"] == chain["stages"]

    # the CLI: text and JSON; an unknown id is a clear error (exit 4)
    store = raising.store_dir
    code, text = _cli("trace", social["doc_id"], "--out", store)
    assert code == 0
    assert f"== raw document {raw_id}" in text and "== social by template/rules" in text
    assert f"position {social['position']}" in text
    code, printed = _cli("trace", str(social["position"]), "--out", store, "--json")
    assert (
        code == 0 and json.loads(printed)["documents"][0]["source_doc_id"] == raw_id.split("/")[1]
    )
    result = CliRunner().invoke(main, ["trace", "no-such-doc", "--out", store])
    assert result.exit_code == 4 and "not in publication" in result.output


def test_a_past_publication_still_traces_after_its_shard_changed(
    raising: RaisingResource, landing: Path, publish: Callable[[], Path]
) -> None:
    """The per-shard files are overwritten by the next run; the publication's lineage is not."""
    first = publish()
    before = trace(first, "alpha.jsonl/fable-1")["documents"][0]
    write_jsonl(
        landing / "alpha.jsonl",
        [{"id": "fable-1", "kind": "fable", "text": "A crow found a jug. Honesty won."}],
    )
    publish()
    after = trace(first, "alpha.jsonl/fable-1")["documents"][0]
    assert after == before and "fox" in after["source"]["text"]
    code, text = _cli("trace", "alpha.jsonl/fable-1", "--out", raising.store_dir)
    assert code == 0 and "crow" in text  # the current publication has the new text


def test_withdrawn_documents_and_shards_leave_the_next_publication(
    raising: RaisingResource,
    instance: DagsterInstance,
    publish: Callable[[], Path],
    landing: Path,
    docs: list[dict[str, str]],
) -> None:
    store = raising.store_dir
    # enough documents left to fill every stage after the withdrawal (retold, not copied:
    # exact duplicates across shards leave the corpus)
    for suffix, retold in (("g", " A teacher read it in school."), ("d", " Told at bedtime.")):
        write_jsonl(
            landing / f"{suffix}.jsonl",
            [{**d, "id": f"{d['id']}-{suffix}", "text": d["text"] + retold} for d in docs],
        )
    before = _records(publish())
    # an id in several shards must be named with its shard; an unknown one is refused
    result = CliRunner().invoke(main, ["withdraw", "fable-1", "--out", store])
    assert result.exit_code == 0, result.output  # fable-1 is only in alpha (beta: fable-1-b)
    result = CliRunner().invoke(main, ["withdraw", "nope", "--out", store])
    assert result.exit_code == 4 and "names no raw document" in result.output
    code, _ = _cli("withdraw", "--shard", "beta.jsonl", "--reason", "license", "--out", store)
    assert code == 0

    report = run_pipeline(raising, instance)
    assert report.published and report.withdrawn == ["beta.jsonl"]
    # the withdrawn shard is not read again: its only run is the one before the withdrawal
    beta_runs = instance.get_runs(filters=RunsFilter(tags={"dagster/partition": "beta.jsonl"}))
    assert len(beta_runs) == 1
    after_folder = (Path(store) / "training_ready").resolve()
    after = _records(after_folder)
    gone = (pl.col("shard") == "beta.jsonl") | (
        (pl.col("shard") == "alpha.jsonl") & (pl.col("source_doc_id") == "fable-1")
    )
    assert after.filter(gone).height == 0
    assert after["position"].to_list() == list(range(after.height))
    # nothing else changed: the other records keep their text, stage and order
    kept = before.filter(~gone)
    assert after.select("doc_id", "text", "stage").equals(kept.select("doc_id", "text", "stage"))
    manifest = json.loads((after_folder / "manifest.json").read_text())
    assert manifest["withdrawals"] == [
        {
            "shard": "alpha.jsonl",
            "doc_id": "fable-1",
            "reason": "withdrawn:withdrawn_on_request",
            "records_dropped": before.filter(
                (pl.col("shard") == "alpha.jsonl") & (pl.col("source_doc_id") == "fable-1")
            ).height,
        }
    ]
    assert {"shard": "beta.jsonl", "reason": "withdrawn:license", "detail": ""} in manifest[
        "left_out_shards"
    ]
    card = (after_folder / "README.md").read_text()
    assert "| beta.jsonl | withdrawn:license |" in card and "| alpha.jsonl | fable-1 |" in card
    result = CliRunner().invoke(main, ["trace", "alpha.jsonl/fable-1", "--out", store])
    assert result.exit_code == 4 and "withdrawn:withdrawn_on_request" in result.output


def test_a_shard_whose_checks_fail_is_named_with_why_it_is_left_out(
    raising: RaisingResource,
    instance: DagsterInstance,
    publish: Callable[[], Path],
    landing: Path,
    docs: list[dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 11, item 2: a new shard failing its checks is left out of a green publication and
    the manifest, the card and the corpus metadata say so, and why."""
    publish()
    write_jsonl(landing / "gamma.jsonl", [{**d, "id": d["id"] + "-g"} for d in docs])
    instance.add_dynamic_partitions("raw_shards", ["gamma.jsonl"])
    defs = build_definitions(raising)
    with monkeypatch.context() as patch:
        unframed_fables(patch)
        shard = defs.resolve_job_def("raise_shard").execute_in_process(
            partition_key="gamma.jsonl", instance=instance, raise_on_error=False
        )
    assert not shard.success
    later = defs.resolve_job_def("publish_curriculum").execute_in_process(
        instance=instance, run_config=RUN_CONFIG, raise_on_error=False
    )
    assert later.success
    folder = (Path(raising.store_dir) / "training_ready").resolve()
    manifest = json.loads((folder / "manifest.json").read_text())
    (left,) = manifest["left_out_shards"]
    assert left["shard"] == "gamma.jsonl" and left["reason"] == "failed_checks"
    assert "every_record_framed_in_first_person" in left["detail"]
    assert "| gamma.jsonl | failed_checks |" in (folder / "README.md").read_text()
    published = instance.get_latest_materialization_event(AssetKey("training_ready_corpus"))
    metadata = published.asset_materialization.metadata
    table = metadata["left_out_shards"]
    assert isinstance(table, TableMetadataValue)
    assert [r.data["shard"] for r in table.records] == ["gamma.jsonl"]
    # the plots' numbers show inline as tables, and the report is attached
    assert isinstance(metadata["value_coverage"], TableMetadataValue)
    assert isinstance(metadata["difficulty_by_stage"], TableMetadataValue)
    assert Path(metadata["audit_report"].value).exists()
    assert metadata["ordered_docs_run"].value == later.run_id


def test_the_audit_report_covers_the_publication(
    raising: RaisingResource, publish: Callable[[], Path], tmp_path: Path
) -> None:
    folder = publish()
    html = (folder / REPORT_FILE).read_text()
    for section in (
        "Summary",
        "Records per stage and variant",
        "Difficulty per stage",
        "Value coverage per stage",
        "Detected in the source",
        "Fallback rates by stage and reason",
        "Quarantine rates by reason",
        "Prompt and model versions",
        "Left-out shards and withdrawals",
        "Sampled records per stage, with their lineage",
    ):
        assert section in html, section
    assert "data:image/png;base64," in html and "<script" not in html and "http" not in html
    manifest = json.loads((folder / "manifest.json").read_text())
    assert f'<td class="num">{manifest["records"]}</td>' in html
    code, path = _cli("report", "--out", raising.store_dir, "--to", str(tmp_path / "r.html"))
    assert code == 0 and Path(path.strip()) == tmp_path / "r.html"
    assert (tmp_path / "r.html").read_text() == html


def test_raw_docs_metadata_previews_the_quarantined_lines(
    raising: RaisingResource, instance: DagsterInstance, landing: Path
) -> None:
    (landing / "gamma.jsonl").write_text('{"text": "Be kind."}\n{"text": 3}\nnot json\n')
    instance.add_dynamic_partitions("raw_shards", ["gamma.jsonl"])
    result = (
        build_definitions(raising)
        .resolve_job_def("raise_shard")
        .execute_in_process(partition_key="gamma.jsonl", instance=instance, raise_on_error=False)
    )
    (raw,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey("raw_docs")
    ]
    preview = raw.materialization.metadata["quarantine_preview"]
    assert isinstance(preview, TableMetadataValue)
    rows = [(r.data["line"], r.data["reason"], r.data["raw"]) for r in preview.records]
    assert rows == [(2, "wrong_type", '{"text": 3}'), (3, "invalid_json", "not json")]
