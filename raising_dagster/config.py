"""Settings, the value codex and the identity card: pydantic models validated at load."""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from raising_dagster.probe.settings import ProbeSettings

M = TypeVar("M", bound=BaseModel)

PACKAGE_DIR = Path(str(resources.files("raising_dagster")))
DEFAULT_CODEX = PACKAGE_DIR / "codex" / "values.yaml"
DEFAULT_IDENTITY = PACKAGE_DIR / "codex" / "identity.yaml"
SAMPLE_CORPUS = PACKAGE_DIR / "sample_corpus"


def sha256_hex(data: bytes | str) -> str:
    """Hex SHA-256 of bytes or UTF-8 text."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodexValue(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z_]*$")
    description: str = Field(min_length=10)
    cues: tuple[str, ...] = Field(min_length=1)
    min_share: dict[str, float] = Field(default_factory=dict)

    @field_validator("cues")
    @classmethod
    def _lower_nonempty(cls, cues: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(c.strip().lower() for c in cues)
        if any(not c for c in cleaned):
            raise ValueError("cue phrases must be non-empty")
        return cleaned

    @field_validator("min_share")
    @classmethod
    def _shares_in_range(cls, shares: dict[str, float]) -> dict[str, float]:
        for stage, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(
                    f"min_share for stage {stage!r} must be within [0, 1], got {share}"
                )
        return shares

    @property
    def cue_pattern(self) -> str:
        """Case-insensitive regex matching any cue at a word start."""
        alternatives = "|".join(re.escape(c).replace(r"\ ", r"\s+") for c in self.cues)
        return rf"(?i)\b(?:{alternatives})"


class ValueCodex(_Strict):
    """The values the corpus must carry, with cue phrases and per-stage minimum shares."""

    version: int
    default_value: str
    values: tuple[CodexValue, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ValueCodex:
        names = [v.name for v in self.values]
        if len(set(names)) != len(names):
            raise ValueError(f"value names must be unique, got {names}")
        if self.default_value not in names:
            raise ValueError(f"default_value {self.default_value!r} is not one of {names}")
        return self

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.values]

    def get(self, name: str) -> CodexValue:
        return next(v for v in self.values if v.name == name)


class Person(_Strict):
    role: Literal["grandparent", "teacher", "peer", "mentor", "parent", "sibling"]
    name: str = Field(min_length=1)
    address: str = Field(min_length=1)


class IdentityCard(_Strict):
    """Who the one persistent "I" is, and the recurring people around it."""

    version: int
    name: str
    pronoun: Literal["I"] = "I"
    description: str
    voice: str
    people: tuple[Person, ...] = Field(min_length=1)
    growth: dict[str, str] = Field(default_factory=dict)

    def person(self, role: str) -> Person:
        """The recurring person of a role (the first listed person if the role is absent)."""
        return next((p for p in self.people if p.role == role), self.people[0])


def _load_yaml_model(model: type[M], path: Path) -> M:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read {model.__name__} from {path}: {exc}") from exc
    return model.model_validate(data)


def load_codex(path: Path | None = None) -> ValueCodex:
    return _load_yaml_model(ValueCodex, path or DEFAULT_CODEX)


def load_identity(path: Path | None = None) -> IdentityCard:
    return _load_yaml_model(IdentityCard, path or DEFAULT_IDENTITY)


def model_sha(model: BaseModel) -> str:
    """Stable content hash of a pydantic model."""
    return sha256_hex(json.dumps(model.model_dump(mode="json"), sort_keys=True))


LLM_PROMPTS: dict[str, str] = {
    "first_person": "first_person/rewrite.v1",
    "experiential": "experiential/rewrite.v1",
    "social": "social/rewrite.v1",
}


class TeacherSettings(BaseModel):
    """The teacher backend and, for the LLM backends (`vllm`, `openai`), model, prompts, limits."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["template", "vllm", "openai"] = "template"
    batch_size: int = Field(default=64, ge=1)
    # LLM backends
    model: str | None = None  # vllm: model folder (None: embedded SmolLM2); openai: served name
    model_revision: str | None = None  # part of the cache key; vllm default: from the folder
    data_dir: Path = Path("data")  # the embedded model is converted under DATA_DIR/models
    prompts: dict[Literal["first_person", "experiential", "social"], str] = Field(
        default_factory=lambda: dict(LLM_PROMPTS)
    )
    max_model_len: int = Field(default=2048, ge=128)
    max_attempts: int = Field(default=3, ge=1)
    structured_dialogue: bool = False  # social stage as JSON turns (structured output)
    cache: bool = True  # the generation cache under STORE_DIR/teacher_cache
    llm_share: float = Field(default=1.0, ge=0.0, le=1.0)  # seeded share of documents for the LLM
    min_length_ratio: float = Field(default=0.25, ge=0.0)
    max_length_ratio: float = Field(default=4.0, gt=0.0)
    output_ratio: float = Field(default=2.5, gt=0.0)  # max_tokens <= ratio * input tokens + 64
    # vllm
    dtype: str = "auto"
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)  # extra vllm.LLM arguments
    cpu_kv_cache_gib: int = Field(default=1, ge=1)
    # openai
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str | None = "RAISING_TEACHER_API_KEY"  # the env var holding the key, never a key
    concurrency: int = Field(default=16, ge=1)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0)  # per request, on 429/5xx/timeouts/bad bodies
    retry_budget: float = Field(default=0.5, ge=0.0)  # retries per batch, as a share of requests
    backoff_s: float = Field(default=0.5, ge=0.0)
    max_backoff_s: float = Field(default=20.0, ge=0.0)


class CurriculumStage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    max_difficulty_quantile: float = Field(gt=0.0, le=1.0)
    max_values: int | None = Field(default=None, ge=0)


class CurriculumSettings(BaseModel):
    """Stages from simple to complex, assigned from difficulty quantiles and value complexity."""

    model_config = ConfigDict(extra="forbid")

    stages: list[CurriculumStage] = Field(
        default_factory=lambda: [
            CurriculumStage(name="foundations", max_difficulty_quantile=0.4, max_values=3),
            CurriculumStage(name="examples", max_difficulty_quantile=0.8),
            CurriculumStage(name="dilemmas", max_difficulty_quantile=1.0),
        ],
        min_length=1,
    )
    dilemma_stage: str | None = "dilemmas"
    seed: int = 20250601
    social_share: float = Field(default=0.5, ge=0.0, le=1.0)
    pacing: Literal["step", "linear", "root"] = "step"
    initial_competence: float = Field(default=0.2, ge=0.0, lt=1.0)
    value_heavy_start: float = Field(default=0.0, ge=0.0, lt=1.0)
    value_heavy_min_values: int = Field(default=3, ge=1)
    safety_policy: Literal["recontextualize", "exclude"] = "recontextualize"
    records_per_file: int = Field(default=50_000, ge=1)

    @model_validator(mode="after")
    def _ordered_stages(self) -> CurriculumSettings:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        quantiles = [s.max_difficulty_quantile for s in self.stages]
        if quantiles != sorted(quantiles) or len(set(quantiles)) != len(quantiles):
            raise ValueError(
                f"max_difficulty_quantile must strictly rise across stages: {quantiles}"
            )
        if quantiles[-1] != 1.0:
            raise ValueError("the last stage must have max_difficulty_quantile 1.0")
        if self.dilemma_stage is not None and self.dilemma_stage not in names:
            raise ValueError(f"dilemma_stage {self.dilemma_stage!r} is not one of {names}")
        return self

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]


class ScoringSettings(BaseModel):
    """Weights of the combined difficulty score (see stages/score.py for each signal's scale)."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[Literal["grade", "diversity", "rare", "compression", "length"], float] = Field(
        default_factory=lambda: {
            "grade": 0.4,
            "diversity": 0.15,
            "rare": 0.2,
            "compression": 0.1,
            "length": 0.15,
        }
    )
    dilemma_min_values: int = Field(default=2, ge=2)

    @field_validator("weights")
    @classmethod
    def _positive(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("difficulty weights must be non-negative with a positive sum")
        return weights


class TokenizerSettings(BaseModel):
    """Tokenized output: a `tokenizer.json` file or HF tokenizer folder (default: the embedded
    teacher's SmolLM2 tokenizer shipped with the package)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    path: Path | None = None
    append_eos: bool = True


class CheckSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_framed_share: float = Field(default=1.0, ge=0.0, le=1.0)


class RaisingSettings(BaseSettings):
    """Every setting of the pipeline; env vars RAISING_<FIELD> (nested with __) override."""

    model_config = SettingsConfigDict(
        env_prefix="RAISING_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    landing_dir: Path = SAMPLE_CORPUS
    store_dir: Path = Path("data/store")
    codex_path: Path = DEFAULT_CODEX
    identity_path: Path = DEFAULT_IDENTITY
    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    curriculum: CurriculumSettings = Field(default_factory=CurriculumSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    tokenizer: TokenizerSettings = Field(default_factory=TokenizerSettings)
    checks: CheckSettings = Field(default_factory=CheckSettings)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)

    @cached_property
    def codex(self) -> ValueCodex:
        return load_codex(self.codex_path)

    @cached_property
    def identity(self) -> IdentityCard:
        return load_identity(self.identity_path)

    @model_validator(mode="after")
    def _codex_stages_known(self) -> RaisingSettings:
        stages = set(self.curriculum.stage_names)
        for value in self.codex.values:
            unknown = set(value.min_share) - stages
            if unknown:
                raise ValueError(
                    f"codex value {value.name!r} sets min_share for unknown stages "
                    f"{sorted(unknown)}"
                )
        self.identity  # noqa: B018 - validate the identity card at load
        return self

    def config_sha(self) -> str:
        """Hash of the settings that shape the output (paths excluded)."""
        shaping = self.model_dump(mode="json", exclude={"landing_dir", "store_dir"})
        return sha256_hex(json.dumps(shaping, sort_keys=True))


def load_settings(config_file: Path | None = None, **overrides: Any) -> RaisingSettings:
    """Settings from defaults < YAML config file < RAISING_* env vars < explicit overrides."""
    file_data: dict[str, Any] = {}
    if config_file is not None:
        file_data = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
        if not isinstance(file_data, dict):
            raise ValueError(f"config file {config_file} must hold a mapping")
    merged = _deep_merge(file_data, _explicit_env())
    merged = _deep_merge(merged, {k: v for k, v in overrides.items() if v is not None})
    return RaisingSettings(**merged)


def _explicit_env() -> dict[str, Any]:
    """The settings given by RAISING_* environment variables alone."""
    env_only = RaisingSettings()
    return env_only.model_dump(include=env_only.model_fields_set)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
