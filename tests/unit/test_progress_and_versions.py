"""Long runs show progress on a terminal (quiet under CI); code versions hash what the run uses."""

import io
import sys
from pathlib import Path

import pytest

from raising_dagster import progress
from raising_dagster.assets.common import code_versions
from raising_dagster.config import load_settings


def test_progress_shows_documents_tokens_per_second_and_eta(monkeypatch, capsys) -> None:
    monkeypatch.setenv("RAISING_PROGRESS", "1")
    with progress.stage_progress("experiential [s1]", total=10) as bar:
        bar.generated(calls=4, tokens=120)
        bar.documents(4)
        bar.bar.refresh()
    err = capsys.readouterr().err
    assert "experiential [s1]" in err and "4/10" in err and "tok/s" in err


def test_progress_is_quiet_under_ci_and_without_a_terminal(monkeypatch) -> None:
    monkeypatch.delenv("RAISING_PROGRESS", raising=False)
    monkeypatch.setenv("CI", "true")
    assert not progress.enabled()
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert not progress.enabled()
    with progress.stage_progress("social", total=3) as bar:
        assert bar.bar is None
        bar.documents(3)  # counting without a bar is fine


def test_editing_your_own_codex_changes_the_code_versions(tmp_path: Path) -> None:
    default = code_versions(load_settings())
    codex = tmp_path / "codex.yaml"
    text = load_settings().codex_path.read_text(encoding="utf-8")
    codex.write_text(
        text.replace("min_share: {foundations: 0.05", "min_share: {foundations: 0.06", 1)
    )
    mine = code_versions(load_settings(codex_path=codex))
    for asset in (
        "scored_docs",
        "first_person_docs",
        "experiential_docs",
        "social_docs",
        "ordered_docs",
    ):
        assert mine[asset] != default[asset], asset
    assert mine["training_ready_corpus"] == default["training_ready_corpus"]
    assert code_versions(load_settings(codex_path=codex)) == mine  # stable


@pytest.mark.parametrize(
    "setting", [{"teacher": {"mode": "rewrite"}}, {"curriculum": {"social_share": 0.3}}]
)
def test_settings_that_shape_a_stage_change_its_code_version(setting: dict) -> None:
    default = code_versions(load_settings())
    changed = code_versions(load_settings(**setting))
    assert changed["social_docs"] != default["social_docs"]
