"""`raising run` as a user runs it: a subprocess, a persistent Dagster home, exit codes."""

import json
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import HONESTY_CODEX, raising_cli


def test_run_publishes_and_summarizes(tmp_path: Path, landing: Path) -> None:
    (landing / "gamma.jsonl").write_text('{"text": "Be kind."}\n{"text": 3}\n', encoding="utf-8")
    out = tmp_path / "out"
    result = raising_cli(
        "run",
        "--landing",
        str(landing),
        "--out",
        str(out),
        "--codex",
        str(HONESTY_CODEX),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "training_ready" / "manifest.json").read_text())
    assert f"Published {manifest['records']} records" in result.stdout
    assert manifest["records"] > 7  # 7 experiential records plus dialogues for a share of them
    assert "--- experiential rendering" in result.stdout
    assert "--- social rendering" in result.stdout
    assert "Quarantine (1 records)" in result.stdout
    quarantine = pl.read_parquet(out / "quarantine" / "gamma.jsonl.parquet")
    assert quarantine["reason"].to_list() == ["wrong_type"]
    # the runs are in the persistent instance, for `make ui`
    assert any((tmp_path / "home").rglob("*.db"))


def test_invalid_codex_is_a_clear_error(tmp_path: Path, landing: Path) -> None:
    codex = tmp_path / "codex.yaml"
    codex.write_text("version: 2\nvalues: []\n", encoding="utf-8")
    result = raising_cli(
        "run",
        "--landing",
        str(landing),
        "--out",
        str(tmp_path / "out"),
        "--codex",
        str(codex),
        home=tmp_path / "home",
    )
    assert result.returncode != 0
    assert "invalid settings" in result.stderr and "values" in result.stderr


def test_synth_writes_the_requested_documents(tmp_path: Path) -> None:
    result = raising_cli(
        "synth",
        "--docs",
        "25",
        "--shards",
        "3",
        "--out",
        str(tmp_path / "s"),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    frames = [pl.read_ndjson(p) for p in sorted((tmp_path / "s").glob("*.jsonl"))]
    assert [f.height for f in frames] == [9, 8, 8]
    assert pl.concat(frames)["id"].n_unique() == 25


# Exit codes (README, "Exit codes"): 0 published, 1 a run failed, 2 usage error, 3 publication
# refused by a quality check, 4 configuration or input unusable.


def test_quality_gate_refusal_has_its_own_exit_code(tmp_path: Path, landing: Path) -> None:
    # the bundled codex asks every stage to carry values this small corpus does not have
    result = raising_cli(
        "run", "--landing", str(landing), "--out", str(tmp_path / "o"), home=tmp_path
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert "each_stage_covers_each_value_at_min_share" in result.stderr
    assert "Publication refused by quality checks" in result.stderr
    assert not (tmp_path / "o" / "training_ready").exists()
    # issue 11, item 4: the stack trace once at most (the failed step's), no Python objects
    assert result.stderr.count("Stack Trace:") <= 1, result.stderr
    assert "MetadataValue" not in result.stderr and " object at 0x" not in result.stderr


def test_unknown_teacher_is_a_usage_error(tmp_path: Path) -> None:
    result = raising_cli("run", "--out", str(tmp_path / "o"), "--teacher", "gpt5", home=tmp_path)
    assert result.returncode == 2
    assert "Invalid value for '--teacher'" in result.stderr
    assert "'template', 'vllm', 'openai'" in result.stderr


def _one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 4, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_malformed_config_yaml_is_one_line_exit_4(tmp_path: Path, landing: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("teacher:\n  backend: [openai\n", encoding="utf-8")
    args = ("--landing", str(landing), "--out", str(tmp_path / "o"), "--config", str(config))
    _one_clear_line(
        raising_cli("run", *args, home=tmp_path), "bad.yaml is not valid YAML", "line 3"
    )


def test_missing_config_file_is_one_line_exit_4(tmp_path: Path, landing: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    args = ("--landing", str(landing), "--out", str(tmp_path / "o"), "--config", missing)
    _one_clear_line(raising_cli("run", *args, home=tmp_path), "nope.yaml does not exist")
    _one_clear_line(raising_cli("cache", "stats", "--config", missing, home=tmp_path), "nope.yaml")


def test_missing_landing_folder_is_one_line_exit_4(tmp_path: Path) -> None:
    args = ("--landing", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    _one_clear_line(raising_cli("run", *args, home=tmp_path), "landing folder", "nowhere")


def test_invalid_settings_value_is_exit_4(tmp_path: Path, landing: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text("teacher:\n  llm_share: 3\n", encoding="utf-8")
    args = ("--landing", str(landing), "--out", str(tmp_path / "o"), "--config", str(config))
    result = raising_cli("run", *args, home=tmp_path)
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert "llm_share" in result.stderr


def test_a_failing_step_exits_1(
    tmp_path: Path, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from raising_dagster.cli import main

    def broken(settings):
        raise RuntimeError("the teacher's engine died")

    monkeypatch.setattr("raising_dagster.resources.teacher.build_teacher", broken)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    out = tmp_path / "o"
    result = CliRunner().invoke(
        main,
        ["run", "--landing", str(landing), "--out", str(out), "--codex", str(HONESTY_CODEX)],
    )
    assert result.exit_code == 1, result.output
    assert "the teacher's engine died" in result.output
    assert "Publication stopped" in result.output


def test_settings_precedence_through_the_cli(tmp_path: Path) -> None:
    """defaults < YAML (`--config`) < RAISING_* env vars < flags, as `raising run` applies them."""
    from click.testing import CliRunner

    from raising_dagster.cli import main

    landing = tmp_path / "yaml-landing"
    config = tmp_path / "s.yaml"
    config.write_text(
        f"landing_dir: {landing}\nstore_dir: /yaml/store\n"
        "teacher:\n  backend: openai\n  model: my-served-model\n",
        encoding="utf-8",
    )
    env = {"RAISING_TEACHER__LLM_SHARE": "0.1", "RAISING_STORE_DIR": "/env/store"}

    def shown(*flags: str) -> dict:
        result = CliRunner().invoke(main, ["settings", "--config", str(config), *flags], env=env)
        assert result.exit_code == 0, result.output
        return yaml.safe_load(result.output)

    plain = shown()
    assert (plain["teacher"]["backend"], plain["teacher"]["model"]) == ("openai", "my-served-model")
    assert plain["teacher"]["llm_share"] == 0.1  # env, beside the YAML section
    assert plain["teacher"]["max_attempts"] == 3  # default
    assert plain["store_dir"] == "/env/store"  # env over YAML
    assert plain["landing_dir"] == str(landing)  # YAML: the flag's absence does not override it
    flagged = shown("--teacher", "template", "--out", "/flag/store", "--landing", "/flag/land")
    assert flagged["teacher"]["backend"] == "template"
    assert flagged["teacher"]["model"] == "my-served-model"
    assert flagged["store_dir"] == "/flag/store" and flagged["landing_dir"] == "/flag/land"
