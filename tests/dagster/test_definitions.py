"""The code location loads, validates, and keeps its asset graph (a change shows up in review)."""

import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from raising_dagster.definitions import defs

EXPECTED_GRAPH = {
    "raw_docs": [],
    "scored_docs": ["raw_docs"],
    "first_person_docs": ["scored_docs"],
    "experiential_docs": ["first_person_docs"],
    "social_docs": ["experiential_docs", "raw_docs"],
    "ordered_docs": ["experiential_docs", "scored_docs", "social_docs"],
    "training_ready_corpus": ["ordered_docs"],
    "student_probe": ["training_ready_corpus"],
}
GROUPS = {"student_probe": "evaluation"}  # every other asset: "raising"


def test_asset_graph_groups_and_partitions() -> None:
    graph = defs.resolve_asset_graph()
    found = {
        key.to_user_string(): sorted(p.to_user_string() for p in graph.get(key).parent_keys)
        for key in graph.get_all_asset_keys()
    }
    assert found == EXPECTED_GRAPH
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name == GROUPS.get(key.to_user_string(), "raising")
        assert node.code_version, key
        unpartitioned = ("ordered_docs", "training_ready_corpus", "student_probe")
        partitioned = key.to_user_string() not in unpartitioned
        assert (node.partitions_def is not None) == partitioned


EXPECTED_KINDS = {
    "raw_docs": {"polars", "parquet"},
    "first_person_docs": {"polars", "parquet"},
    "experiential_docs": {"polars", "parquet"},
    "social_docs": {"polars", "parquet"},
    "scored_docs": {"polars", "parquet"},
    "ordered_docs": {"duckdb", "parquet"},
    "training_ready_corpus": {"duckdb", "parquet", "huggingface"},
    "student_probe": {"pytorch", "parquet"},
}


def test_assets_declare_kinds_and_the_shard_assets_their_column_schema() -> None:
    """Dagster's conventions: `kinds` for the catalog's icons and filters, and the standard
    `dagster/column_schema` where the schema is known before any run."""
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.kinds == EXPECTED_KINDS[name], name
        if node.partitions_def is not None:
            schema = node.metadata["dagster/column_schema"]
            assert schema.columns and all(c.type for c in schema.columns), name


def test_blocking_checks_guard_the_framed_assets() -> None:
    graph = defs.resolve_asset_graph()
    keys = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert keys == {
        ("raw_docs", "records_in_equal_kept_plus_quarantined"),
        ("raw_docs", "raw_docs_meet_expectation_suite"),
        ("first_person_docs", "every_record_framed_in_first_person"),
        ("first_person_docs", "first_person_docs_meet_expectation_suite"),
        ("experiential_docs", "every_record_has_first_person_reflection"),
        ("experiential_docs", "experiential_docs_meet_expectation_suite"),
        ("social_docs", "every_record_is_dialogue_with_i_speaking"),
        ("social_docs", "social_docs_meet_expectation_suite"),
        ("scored_docs", "scored_docs_meet_expectation_suite"),
        ("ordered_docs", "positions_contiguous_and_stages_non_decreasing"),
        ("ordered_docs", "each_stage_covers_each_value_at_min_share"),
        ("ordered_docs", "stage_median_difficulty_rising"),
        ("ordered_docs", "no_record_is_raw_text_without_framing"),
        ("ordered_docs", "every_record_traces_to_raw_doc_prompt_and_model"),
        ("ordered_docs", "every_kept_doc_in_curriculum_or_excluded_with_reason"),
        ("ordered_docs", "ordered_docs_meet_expectation_suite"),
        ("ordered_docs", "quarantined_share_within_limit"),
        ("ordered_docs", "teacher_text_varies_across_records"),
    }
    advisory = {("ordered_docs", "teacher_text_varies_across_records")}
    for key in graph.asset_check_keys:
        spec = graph.get_check_spec(key)
        assert spec.blocking == ((key.asset_key.to_user_string(), key.name) not in advisory), key
        # partitioned like its asset, so the instance keeps each shard's latest result
        assert spec.partitions_def == graph.get(key.asset_key).partitions_def, key


def test_every_check_says_what_it_asserts() -> None:
    """Issue 11, item 4: no check shows "No description provided" in the UI."""
    graph = defs.resolve_asset_graph()
    for key in graph.asset_check_keys:
        description = graph.get_check_spec(key).description
        assert description and len(description) > 40, key


def test_jobs_and_sensor_are_defined() -> None:
    assert defs.resolve_job_def("raise_shard").partitions_def is not None
    assert defs.resolve_job_def("publish_curriculum").partitions_def is None
    # the probe never blocks publication: only its own job runs it
    graph = defs.resolve_asset_graph()
    for job, probes in (
        ("raise_shard", False),
        ("publish_curriculum", False),
        ("probe_student", True),
    ):
        selected = defs.resolve_job_def(job).asset_layer.selected_asset_keys
        assert (AssetKey("student_probe") in selected) is probes, job
    assert not graph.get(AssetKey("student_probe")).child_keys
    assert defs.resolve_sensor_def("raw_shard_sensor").job_name == "raise_shard"


def test_dagster_cli_validates_the_workspace(tmp_path: Path) -> None:
    root = Path(__file__).parents[2]
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=root,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
