"""End to end on a real S3-compatible server: shards uploaded to a landing prefix, the sensor
fires, the assets materialize on a Dagster instance, and the per-shard stages, the quarantine and
the publication land in the bucket; the pointer object moves only when a publication is whole
(a failed upload or a refused publication leaves the previous pointer), and the readers follow
it. `raising run` with both ends on S3, as a user types it."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, SensorResult, build_sensor_context
from dagster_aws.s3 import S3Resource

from raising_dagster.cli import main
from raising_dagster.definitions import build_definitions
from raising_dagster.probe.data import read_published
from raising_dagster.resources import RaisingResource
from raising_dagster.runner import RUN_CONFIG
from raising_dagster.sensors import raw_shard_sensor
from raising_dagster.storage import S3Path, read_parquet
from raising_dagster.store import POINTER_FILE, StoreLayout, list_publications
from tests.conftest import HONESTY_CODEX
from tests.s3.conftest import keys

pytestmark = pytest.mark.s3


def _upload_jsonl(path: S3Path, records: list[object]) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n")


def _raising(bucket: S3Path, config: Path) -> RaisingResource:
    return RaisingResource(
        landing_dir=str(bucket / "landing"),
        store_dir=str(bucket / "store"),
        codex_path=str(HONESTY_CODEX),
        config_file=str(config),
    )


def _pointer(store: S3Path) -> dict:
    return json.loads((store / POINTER_FILE).read_text())


def _sensor_runs(
    instance: DagsterInstance, raising: RaisingResource, cursor: str | None
) -> tuple[list[str], str]:
    """One sensor tick, then what the daemon does: register the partitions, launch the runs."""
    with build_sensor_context(
        instance=instance, cursor=cursor, resources={"raising": raising, "s3": S3Resource()}
    ) as context:
        tick = raw_shard_sensor(context)
    assert isinstance(tick, SensorResult)
    for request in tick.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    job = build_definitions(raising).resolve_job_def("raise_shard")
    for request in tick.run_requests:
        result = job.execute_in_process(
            partition_key=request.partition_key,
            instance=instance,
            run_config=RUN_CONFIG,
            tags=request.tags,
        )
        assert result.success
    return [r.partition_key for r in tick.run_requests], tick.cursor


def _publish(instance: DagsterInstance, raising: RaisingResource):
    return (
        build_definitions(raising)
        .resolve_job_def("publish_curriculum")
        .execute_in_process(instance=instance, run_config=RUN_CONFIG, raise_on_error=False)
    )


def test_sensor_to_publication_in_the_bucket_and_a_pointer_that_moves_only_when_whole(
    bucket: S3Path,
    s3_env: str,
    work_config: Path,
    tmp_path: Path,
    docs: list[dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    landing, store = bucket / "landing", bucket / "store"
    _upload_jsonl(landing / "alpha.jsonl", [*docs, "{not json"])  # one line to quarantine
    retold = " I heard this once more from another storyteller."
    _upload_jsonl(
        landing / "beta.jsonl",
        [{**d, "id": d["id"] + "-b", "text": d["text"] + retold} for d in docs],
    )
    raising = _raising(bucket, work_config)
    with DagsterInstance.ephemeral() as instance:
        raised, cursor = _sensor_runs(instance, raising, None)
        assert raised == ["alpha.jsonl", "beta.jsonl"]
        assert _publish(instance, raising).success
        stored = keys(store)
        for asset in ("raw_docs", "scored_docs", "first_person_docs", "experiential_docs"):
            assert {f"{asset}/alpha.jsonl.parquet", f"{asset}/beta.jsonl.parquet"} <= set(stored)
        quarantine = read_parquet(store / "quarantine" / "alpha.jsonl.parquet")
        assert quarantine["reason"].to_list() == ["invalid_json"]
        stats = json.loads((store / "raw_docs" / "alpha.jsonl.stats.json").read_text())
        assert (stats["records_in"], stats["kept"], stats["quarantined"]) == (4, 3, 1)
        assert stats["etag"] == (landing / "alpha.jsonl").etag
        # the publication under its own prefix, then the pointer naming it
        first = _pointer(store)["id"]
        publication = store / "publications" / first
        assert not [k for k in stored if k.startswith("training_ready/")]
        manifest = json.loads((publication / "manifest.json").read_text())
        records = read_parquet(publication / "data" / "*.parquet")
        assert records.height == manifest["records"] > 0
        published = keys(publication)
        assert {"manifest.json", "publication.json", "README.md", "audit/lineage.parquet"} <= set(
            published
        )
        assert any(k.startswith("tokens/") and k.endswith(".bin") for k in published)
        assert not list((tmp_path / "work").glob(".training_ready.staging-*"))  # cleaned up

        # readers follow the pointer: trace, publications list, report, the probe's reader
        runner = CliRunner()
        traced = runner.invoke(main, ["trace", "alpha.jsonl/fable-1", "--out", str(store)])
        assert traced.exit_code == 0, traced.output
        assert "The Fox and the Grapes" in traced.output
        listed = runner.invoke(main, ["publications", "list", "--out", str(store), "--json"])
        assert [(p["id"], p["current"]) for p in json.loads(listed.output)] == [(first, True)]
        report = tmp_path / "report.html"
        made = runner.invoke(main, ["report", "--out", str(store), "--to", str(report)])
        assert made.exit_code == 0 and "<html" in report.read_text()
        probe_records, sources = read_published(store)
        assert probe_records.height == records.height and sources.height == 6

        # an upload cut short: the pointer stays, the partial prefix is not a publication
        uploads = {"n": 0}
        upload = S3Path.upload

        def failing_upload(self: S3Path, local: Path) -> None:
            uploads["n"] += 1
            if uploads["n"] > 3:
                raise ConnectionError("connection reset by peer")
            upload(self, local)

        with monkeypatch.context() as patched:
            patched.setattr(S3Path, "upload", failing_upload)
            assert not _publish(instance, raising).success
        assert uploads["n"] > 3 and _pointer(store)["id"] == first
        assert [p.name for p in (store / "publications").iterdir()] == [first]  # partial removed
        assert not list((tmp_path / "work").glob(".training_ready.staging-*"))
        # a partial upload that could not be removed (publication.json comes last) is not listed
        (store / "publications" / "20990101T000000Z-cut" / "data" / "part.parquet").write_text("")
        assert [p["id"] for p in list_publications(StoreLayout(store))] == [first]

        # a new shard through the sensor, mostly unreadable: publication refused by its check
        _upload_jsonl(landing / "junk.jsonl", ["{broken"] * 9)
        raised, cursor = _sensor_runs(instance, raising, cursor)
        assert raised == ["junk.jsonl"]
        refused = _publish(instance, raising)
        assert not refused.success
        failed = {e.check_name for e in refused.get_asset_check_evaluations() if not e.passed}
        assert failed == {"quarantined_share_within_limit"}
    assert _pointer(store)["id"] == first
    kept = read_parquet(store / "publications" / first / "data" / "*.parquet")
    assert "junk.jsonl" not in set(kept["shard"].to_list())
    assert read_parquet(store / "quarantine" / "junk.jsonl.parquet").height == 9


def test_raising_run_from_an_s3_landing_prefix_to_an_s3_store(
    bucket: S3Path,
    s3_env: str,
    work_config: Path,
    tmp_path: Path,
    docs: list[dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _upload_jsonl(bucket / "landing" / "alpha.jsonl", docs)
    store = bucket / "store"
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    args = ["--landing", str(bucket / "landing"), "--out", str(store)]
    ran = CliRunner().invoke(
        main, ["run", *args, "--codex", str(HONESTY_CODEX), "--config", str(work_config)]
    )
    assert ran.exit_code == 0, ran.output
    first = _pointer(store)["id"]
    assert f"{store / POINTER_FILE} -> publication {first}" in ran.output
    assert f"Quarantine (0 records): {store / 'quarantine'}" in ran.output
    # the instance (SQLite), the runner's lock and the staging stay in the local work folder
    work = tmp_path / "work"
    assert (work / "dagster_home" / "dagster.yaml").is_file() and (work / ".raising.lock").exists()
    assert f"Dagster home (for `make ui`): {work / 'dagster_home'}" in ran.output
    assert not [k for k in keys(store) if "dagster_home" in k or "staging" in k]
