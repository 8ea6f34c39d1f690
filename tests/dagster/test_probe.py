"""The student probe for real: tiny students trained on synthetic published corpora, through a
Dagster instance and through `raising probe`; the figures must follow what the students read."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from raising_dagster.assets.evaluation import student_probe
from raising_dagster.resources import RaisingResource
from tests.probe_corpus import TINY, publish_synthetic

pytest.importorskip("torch", reason="the student probe needs the probe extra (torch)")
pytest.importorskip("transformers", reason="the student probe needs the probe extra")

pytestmark = pytest.mark.slow
RAISING = str(Path(sys.executable).parent / "raising")


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("probe-config") / "settings.yaml"
    path.write_text(json.dumps({"probe": TINY}), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture(scope="module")
def first_person_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_config: Path
) -> tuple[Path, Any, dict[str, Any]]:
    """`student_probe` materialized in a real Dagster instance on the first-person corpus."""
    store = publish_synthetic(tmp_path_factory.mktemp("first-person"), first_person=True)
    raising = RaisingResource(store_dir=str(store), config_file=str(tiny_config))
    with DagsterInstance.ephemeral() as instance:
        result = materialize([student_probe], instance=instance, resources={"raising": raising})
        assert result.success
        events = instance.fetch_materializations(AssetKey("student_probe"), limit=1).records
        metadata = events[0].asset_materialization.metadata
    report = json.loads((store / "student_probe" / "probe.json").read_text())
    return store, metadata, report


def test_probe_asset_materializes_with_table_plots_and_probe_json(
    first_person_run: tuple[Path, Any, dict[str, Any]],
) -> None:
    store, metadata, report = first_person_run
    assert "| raised_ordered |" in metadata["figures"].value
    assert "| foundations |" in metadata["order"].value
    assert metadata["plot_probe_figures"].value.startswith("![probe_figures](data:image/png")
    assert metadata["raw_first_person_share"].value == report["arms"]["raw"]["first_person_share"]
    assert set(report["arms"]) == {"raw", "raised_ordered", "raised_shuffled"}
    for arm in report["arms"].values():
        for key in (
            "first_person_share",
            "other_narrator_share",
            "value_share",
            "heldout_perplexity",
        ):
            low, high = arm[f"{key}_ci"]
            assert low <= arm[key] <= high, key
        assert arm["training"]["tokens_seen"] == 49_152  # the same budget for every arm
    assert report["settings"]["budget_tokens"] == 49_152
    assert report["data"]["records"] == 60 and report["data"]["heldout_source_docs"] == 6
    assert report["order"]["stages"] == ["foundations", "examples"]
    assert len(report["order"]["tokens_seen"]) == 3  # before training and at two points
    for plot in report["plots"]:
        assert (store / "student_probe" / plot).stat().st_size > 1000


def test_persona_and_values_follow_what_the_students_read(
    first_person_run: tuple[Path, Any, dict[str, Any]],
) -> None:
    store, _, report = first_person_run
    arms = report["arms"]
    completions = pl.read_parquet(store / "student_probe" / "completions.parquet")
    # real generations: every prompt sampled for every arm, texts that differ
    assert completions.height == 3 * 4 * (36 + 24)
    assert completions["text"].n_unique() > completions.height // 2
    raised = completions.filter(pl.col("arm") == "raised_ordered", pl.col("probe") == "persona")
    assert raised["first_person"].mean() == pytest.approx(
        arms["raised_ordered"]["first_person_share"]
    )
    # the raised students read only "I"; the raw student never did
    for arm in ("raised_ordered", "raised_shuffled"):
        assert arms[arm]["first_person_share"] > arms["raw"]["first_person_share"] + 0.4
        assert arms[arm]["first_person_share_ci"][0] > arms["raw"]["first_person_share_ci"][1]
        # ... and only the raised students read sentences that carry the codex values
        assert arms[arm]["value_share"] > arms["raw"]["value_share"] + 0.15
        assert arms[arm]["value_share_ci"][0] > arms["raw"]["value_share_ci"][1]
    assert report["judge"]["judge"] == "cue"


def test_cli_probe_on_a_third_person_corpus_prints_the_table(
    tmp_path: Path, tiny_config: Path, first_person_run: tuple[Path, Any, dict[str, Any]]
) -> None:
    store = publish_synthetic(tmp_path / "store", first_person=False)
    out = tmp_path / "probe"
    result = subprocess.run(
        [
            *(RAISING, "probe", "--store", str(store), "--out", str(out)),
            *("--config", str(tiny_config), "--budget-tokens", "40960"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "arm" in result.stdout and "held-out ppl" in result.stdout
    assert f"Results: {out / 'probe.json'}" in result.stdout
    report = json.loads((out / "probe.json").read_text())
    assert report["settings"]["budget_tokens"] == 40_960  # the flag over the config file
    assert report["settings"]["hidden_size"] == TINY["hidden_size"]
    assert report["arms"]["raw"]["training"]["tokens_seen"] == 40_960
    table_row = next(
        line for line in result.stdout.splitlines() if line.startswith("raised_ordered")
    )
    assert f"{report['arms']['raised_ordered']['first_person_share']:.2f}" in table_row
    # students of the same size, fed third-person raised text, write far less in the first person
    first_person = first_person_run[2]["arms"]["raised_ordered"]["first_person_share"]
    assert report["arms"]["raised_ordered"]["first_person_share"] < first_person - 0.4


def test_cli_probe_without_a_published_corpus_fails_clearly(tmp_path: Path) -> None:
    result = subprocess.run(
        [RAISING, "probe", "--store", str(tmp_path), "--out", str(tmp_path / "probe")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "no published corpus" in result.stderr
