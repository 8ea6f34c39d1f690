"""Settings precedence, level by level: defaults < YAML < RAISING_* env < explicit overrides."""

from pathlib import Path

import pytest

from raising_dagster.config import ConfigError, load_settings

TEACHER_YAML = """\
teacher:
  backend: openai
  model: my-served-model
  max_attempts: 5
curriculum:
  seed: 7
store_dir: /from/yaml
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(TEACHER_YAML, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("RAISING_"):
            monkeypatch.delenv(name)


def test_defaults_without_file_env_or_overrides() -> None:
    settings = load_settings()
    assert settings.teacher.backend == "template"
    assert settings.teacher.model is None
    assert settings.teacher.llm_share == 1.0
    assert settings.curriculum.seed == 20250601
    assert settings.store_dir == Path("data/store")


def test_yaml_file_overrides_defaults_and_keeps_the_other_defaults(config_file: Path) -> None:
    settings = load_settings(config_file)
    assert (settings.teacher.backend, settings.teacher.model) == ("openai", "my-served-model")
    assert settings.teacher.max_attempts == 5
    assert settings.teacher.batch_size == 64  # not in the file: the default
    assert settings.curriculum.seed == 7
    assert settings.curriculum.pacing == "step"
    assert settings.store_dir == Path("/from/yaml")


def test_one_nested_env_var_keeps_the_rest_of_the_yaml_section(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported bug: RAISING_TEACHER__LLM_SHARE reset the whole YAML `teacher:` section."""
    monkeypatch.setenv("RAISING_TEACHER__LLM_SHARE", "0.1")
    settings = load_settings(config_file)
    assert settings.teacher.llm_share == 0.1
    assert (settings.teacher.backend, settings.teacher.model) == ("openai", "my-served-model")
    assert settings.teacher.max_attempts == 5
    assert settings.curriculum.seed == 7


def test_env_vars_override_the_yaml_file(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAISING_TEACHER__MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RAISING_CURRICULUM__SEED", "11")
    monkeypatch.setenv("RAISING_STORE_DIR", "/from/env")
    settings = load_settings(config_file)
    assert settings.teacher.max_attempts == 2
    assert settings.curriculum.seed == 11
    assert settings.store_dir == Path("/from/env")
    assert settings.teacher.model == "my-served-model"


def test_explicit_overrides_beat_env_and_yaml_and_merge_into_sections(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the CLI flags (`--teacher`, `--out`, ...) and the Dagster resource's fields pass."""
    monkeypatch.setenv("RAISING_TEACHER__BACKEND", "vllm")
    monkeypatch.setenv("RAISING_TEACHER__LLM_SHARE", "0.3")
    monkeypatch.setenv("RAISING_STORE_DIR", "/from/env")
    settings = load_settings(config_file, teacher={"backend": "template"}, store_dir="/from/cli")
    assert settings.teacher.backend == "template"
    assert settings.teacher.llm_share == 0.3  # env, untouched by the override
    assert settings.teacher.model == "my-served-model"  # YAML, untouched by env and override
    assert settings.store_dir == Path("/from/cli")
    # None means "flag not given": the lower levels stay
    assert load_settings(config_file, store_dir=None).store_dir == Path("/from/env")


def test_config_file_from_env_var(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAISING_CONFIG_FILE", str(config_file))
    assert load_settings().teacher.backend == "openai"


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*nope\.yaml does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_malformed_yaml_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("teacher:\n  backend: [openai\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML.*line 3") as info:
        load_settings(bad)
    assert "\n" not in str(info.value)


def test_yaml_that_is_not_a_mapping_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "list.yaml"
    bad.write_text("- teacher\n- curriculum\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_settings(bad)


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("teacher:\n  backnd: openai\n", encoding="utf-8")
    with pytest.raises(ValueError, match="backnd"):
        load_settings(bad)


def test_a_version_1_codex_is_refused_with_how_to_migrate(tmp_path: Path) -> None:
    from raising_dagster.config import load_codex

    old = tmp_path / "codex.yaml"
    old.write_text(
        "version: 1\ndefault_value: honesty\nvalues:\n  - name: honesty\n"
        "    description: telling the truth always\n    cues: [honest]\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"default_value .* is gone.*trailing '\*'"):
        load_codex(old)


def test_cues_match_whole_words_and_a_star_any_ending() -> None:
    import polars as pl

    from raising_dagster.config import CodexValue

    value = CodexValue(
        name="kindness", description="caring about others", cues=["kind", "help* others"]
    )
    texts = pl.Series(["so kind", "kindle", "she helps others", "helpful"])
    assert texts.str.contains(value.cue_pattern).to_list() == [True, False, True, False]
    with pytest.raises(ValueError, match="not a valid regular expression"):
        CodexValue(name="x", description="a value with a bad regex", cues=["x"], not_cues=["(?=a)"])
