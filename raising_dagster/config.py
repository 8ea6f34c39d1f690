"""Settings, the value codex and the identity card: pydantic models validated at load."""

from __future__ import annotations

import hashlib
import json
import os
import re
from contextvars import ContextVar
from functools import cached_property
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from raising_dagster.probe.settings import ProbeSettings
from raising_dagster.storage import S3Options, S3Path, is_s3, location

M = TypeVar("M", bound=BaseModel)

PACKAGE_DIR = Path(str(resources.files("raising_dagster")))
DEFAULT_CODEX = PACKAGE_DIR / "codex" / "values.yaml"
DEFAULT_IDENTITY = PACKAGE_DIR / "codex" / "identity.yaml"
SAMPLE_CORPUS = PACKAGE_DIR / "sample_corpus"


def _to_location(value: object) -> Path | S3Path:
    if isinstance(value, Path | S3Path):
        return value
    if isinstance(value, str):
        return location(value)
    raise ValueError(f"expected a local path or an s3://bucket/prefix URI, not {value!r}")


# A local folder (Path) or an S3 prefix (S3Path) given as `s3://bucket/prefix`.
StorageLocation = Annotated[
    Path | S3Path,
    PlainValidator(_to_location),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string"}),
]


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


def _check_regex(pattern: str, what: str) -> None:
    """Refuse a pattern that Polars' regex engine (Rust `regex`: no look-around, no
    backreferences) cannot compile."""
    import polars as pl

    try:
        pl.Series([""]).str.contains(pattern)
    except pl.exceptions.ComputeError as exc:
        raise ValueError(f"{what} {pattern!r} is not a valid regular expression: {exc}") from exc


class CodexValue(_Strict):
    """One value of the codex: how to recognise it in a text and how much of each stage must
    teach it.

    `cues` are words or phrases matched whole and case-insensitively; a word ending in `*`
    matches any ending (`honest*` matches honest, honesty, honestly; `help* others` matches
    "helping others"). `not_cues` are regular expressions of
    look-alike uses that are not the value ("kind of", "lie down"): a cue inside one is ignored.
    """

    name: str = Field(pattern=r"^[a-z][a-z_]*$")
    description: str = Field(min_length=10)
    cues: tuple[str, ...] = Field(min_length=1)
    not_cues: tuple[str, ...] = ()
    min_share: dict[str, float] = Field(default_factory=dict)

    @field_validator("cues")
    @classmethod
    def _lower_nonempty(cls, cues: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(c.strip().lower() for c in cues)
        if any(not c.rstrip("*") for c in cleaned):
            raise ValueError("cue phrases must be non-empty")
        return cleaned

    @field_validator("not_cues")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            _check_regex(pattern, "not_cue")
        return patterns

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
        """Case-insensitive regex matching any cue as whole words; a word ending in `*` matches
        any ending (`help* others` matches "helps others", "helping others")."""
        alternatives = "|".join(
            r"\s+".join(
                re.escape(word.rstrip("*")) + (r"\w*" if word.endswith("*") else "")
                for word in cue.split()
            )
            for cue in self.cues
        )
        return rf"(?i)\b(?:{alternatives})\b"

    @property
    def not_cue_pattern(self) -> str | None:
        """Case-insensitive regex of the look-alike uses, or None."""
        if not self.not_cues:
            return None
        return "(?i)" + "|".join(f"(?:{p})" for p in self.not_cues)


class ValueCodex(_Strict):
    """The values the corpus must teach: cue phrases to detect them, the minimum share of each
    curriculum stage that must teach each, and how many values one record may teach."""

    version: int = Field(ge=2)
    max_taught_values: int = Field(default=2, ge=1)
    values: tuple[CodexValue, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_v1_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and "default_value" in data:
            raise ValueError(
                "default_value (codex version 1) is gone: a document without a cue is now "
                "assigned a value so that every stage meets its min_share; remove default_value, "
                "set version: 2, and mark prefix cues with a trailing '*' (honest*)"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ValueCodex:
        names = [v.name for v in self.values]
        if len(set(names)) != len(names):
            raise ValueError(f"value names must be unique, got {names}")
        return self

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.values]

    def get(self, name: str) -> CodexValue:
        return next(v for v in self.values if v.name == name)

    def stage_min_shares(self, stage: str) -> dict[str, float]:
        """The positive minimum shares a stage asks for, by value."""
        return {v.name: v.min_share[stage] for v in self.values if v.min_share.get(stage, 0) > 0}


Role = Literal["grandparent", "parent", "teacher", "peer", "sibling", "mentor"]
ROLES: tuple[Role, ...] = ("grandparent", "parent", "teacher", "peer", "sibling", "mentor")


class Person(_Strict):
    role: Role
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


# The LLM prompt of each framing stage, by teacher mode (`teacher.prompts` overrides one).
LLM_PROMPTS: dict[str, dict[str, str]] = {
    "experience": {
        "first_person": "first_person/experience.v1",
        "experiential": "experiential/experience.v1",
        "social": "social/experience.v1",
    },
    "rewrite": {
        "first_person": "first_person/rewrite.v1",
        "experiential": "experiential/rewrite.v1",
        "social": "social/rewrite.v1",
    },
}
FramingStage = Literal["first_person", "experiential", "social"]


# Settings of how the teacher is reached, not of what it writes: left out of the code versions, so
# resizing the fleet or tuning retries does not make the framed assets stale.
TEACHER_TRANSPORT_FIELDS = frozenset(
    {
        "batch_size",
        "data_dir",
        "cache_dir",
        "base_url",
        "base_urls",
        "api_key_env",
        "concurrency",
        "timeout_s",
        "max_retries",
        "retry_budget",
        "backoff_s",
        "max_backoff_s",
        "eject_after_failures",
        "eject_s",
    }
)


class TeacherSettings(BaseModel):
    """The teacher backend and, for the LLM backends (`vllm`, `openai`), model, prompts, limits.

    `mode: experience` (default) keeps each document verbatim and asks the model only for the
    experience around it (a short first-person reflection, the "I"'s turn in a dialogue), the
    answer started for it; `mode: rewrite` asks for a whole rewrite, for strong models."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["template", "vllm", "openai"] = "template"
    mode: Literal["experience", "rewrite"] = "experience"
    # experience mode: the stages whose text the model writes (the others: the template teacher);
    # a 135M model cannot say what it is about to read, so the opener stays templated by default
    llm_stages: tuple[FramingStage, ...] = ("experiential", "social")
    # experience mode, openai backend: `continue` sends the started answer as a final assistant
    # message to continue (vLLM's continue_final_message); `instruct` asks for it in the prompt
    prefill: Literal["continue", "instruct"] = "continue"
    min_grounding: int = Field(
        default=0, ge=0
    )  # content words an output must share with its source
    batch_size: int = Field(default=64, ge=1)
    # LLM backends
    model: str | None = None  # vllm: model folder (None: embedded SmolLM2); openai: served name
    model_revision: str | None = None  # part of the cache key; vllm default: from the folder
    data_dir: Path = Path("data")  # the embedded model is converted under DATA_DIR/models
    prompts: dict[FramingStage, str] = Field(default_factory=dict)  # stage -> prompt id override
    max_model_len: int = Field(default=2048, ge=128)
    max_attempts: int = Field(default=3, ge=1)
    structured_dialogue: bool = False  # social stage as JSON turns (structured output)
    cache: bool = True  # the generation cache (SQLite) under cache_dir
    # a local folder (SQLite needs a local file system); None: STORE_DIR/teacher_cache for a
    # local store, STORAGE.WORK_DIR/teacher_cache for a store on S3
    cache_dir: Path | None = None
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
    # several OpenAI-compatible servers (a fleet without a router): requests are spread over them,
    # least loaded first, each with its own `concurrency`; used instead of base_url when given
    base_urls: list[str] = Field(default_factory=list)
    api_key_env: str | None = "RAISING_TEACHER_API_KEY"  # the env var holding the key, never a key
    concurrency: int = Field(default=16, ge=1)  # requests in flight per endpoint
    # an endpoint failing this many requests in a row (connection error, timeout, 429/5xx, bad
    # body) gets no requests for eject_s seconds while others are healthy; then one is tried again
    eject_after_failures: int = Field(default=3, ge=1)
    eject_s: float = Field(default=30.0, ge=0.0)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0)  # per request, on 429/5xx/timeouts/bad bodies
    retry_budget: float = Field(default=0.5, ge=0.0)  # retries per batch, as a share of requests
    backoff_s: float = Field(default=0.5, ge=0.0)
    max_backoff_s: float = Field(default=20.0, ge=0.0)

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _cache_dir_local(cls, value: Any) -> Any:
        if is_s3(value):
            raise ValueError(
                f"teacher.cache_dir must be a local folder, not {value}: the generation cache is "
                "SQLite, which needs a local file system (keep the store on S3 and the cache local)"
            )
        return value

    @field_validator("base_urls")
    @classmethod
    def _distinct_http_urls(cls, urls: list[str]) -> list[str]:
        cleaned = [u.rstrip("/") for u in urls]
        for url in cleaned:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"teacher.base_urls: {url!r} is not an http(s) URL")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("teacher.base_urls: an endpoint is listed twice")
        return cleaned

    def endpoints(self) -> list[str]:
        """The OpenAI-compatible endpoints: base_urls, else base_url."""
        return list(self.base_urls) or [self.base_url.rstrip("/")]

    def prompt_id(self, stage: FramingStage) -> str:
        """The LLM prompt of a stage: the override, else the mode's default."""
        return self.prompts.get(stage) or LLM_PROMPTS[self.mode][stage]

    def uses_llm(self, stage: FramingStage) -> bool:
        """Whether the model writes this stage's text (else the template teacher does)."""
        return self.mode == "rewrite" or stage in self.llm_stages


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
    # a value is detected when its cue hits reach max(1, words // value_words_per_hit)
    value_words_per_hit: int = Field(default=400, ge=1)

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
    # The end-of-document token appended after every record (datatrove's `eos_token`): one of the
    # tokenizer's special tokens, checked at load; null: append none. Llama 3: <|end_of_text|>.
    eos_token: str | None = "<|endoftext|>"

    @model_validator(mode="after")
    def _eos_token_in_tokenizer(self) -> TokenizerSettings:
        if self.enabled:
            from raising_dagster.stages.tokenize import check_eos_token

            if self.eos_token is not None:
                check_eos_token(self.path, self.eos_token)
            elif self.path is not None and not self.path.exists():
                raise ValueError(f"no tokenizer.json at {self.path}")
        return self


class RedactionSettings(BaseModel):
    """What ingest redacts from texts and titles (stages/redact.py); each redaction is counted per
    record and reason."""

    model_config = ConfigDict(extra="forbid")

    secrets: bool = True  # cloud and API keys, tokens, private key blocks, `password=` values
    emails: bool = True  # replaced as datatrove's PII formatter does
    ips: bool = True  # public IPv4 addresses only, as datatrove's PII formatter does


class IngestSettings(BaseModel):
    """Per-record limits and clean-up at ingest (stages/ingest.py, normalize.py, redact.py)."""

    model_config = ConfigDict(extra="forbid")

    max_doc_chars: int = Field(default=1_000_000, ge=1)  # longer documents: quarantined, too_long
    normalize: bool = True  # stages/normalize.py: controls, escapes, bidi, line breaks, NFC
    fix_mojibake: bool = False  # also undo mojibake (ftfy fix_encoding; ~0.4 ms per non-ASCII doc)
    redact: RedactionSettings = Field(default_factory=RedactionSettings)


class DedupSettings(BaseModel):
    """Duplicates across shards (stages/dedup.py): exact (same text) always unless turned off;
    near duplicates (MinHash over word shingles, Jaccard >= threshold) when `near` is on."""

    model_config = ConfigDict(extra="forbid")

    exact: bool = True
    near: bool = False
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    num_perm: int = Field(default=128, ge=16)
    num_bands: int = Field(default=16, ge=1)
    shingle_words: int = Field(default=5, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _bands_divide(self) -> DedupSettings:
        if self.num_perm % self.num_bands:
            raise ValueError(f"num_bands {self.num_bands} must divide num_perm {self.num_perm}")
        return self


class CheckSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_framed_share: float = Field(default=1.0, ge=0.0, le=1.0)
    # corpus level: quarantined records over records in, across the published shards
    max_quarantined_share: float = Field(default=0.5, ge=0.0, le=1.0)


class DatasetCardSettings(BaseModel):
    """What the published corpus's dataset card (`training_ready/README.md`) says about it."""

    model_config = ConfigDict(extra="forbid")

    # A Hugging Face Hub license id (apache-2.0, cc-by-4.0, odc-by, other, ...): the corpus's
    # terms follow from its sources', which only you know.
    license: str = Field(default="unknown", pattern=r"^[a-z0-9][a-z0-9.+-]*$")
    language: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    pretty_name: str = "Model-raising curriculum corpus"


class StorageSettings(BaseModel):
    """Object storage: how to reach an S3-compatible store (credentials only from the
    environment) and the local folder for what cannot live on S3."""

    model_config = ConfigDict(extra="forbid")

    # the endpoint of an S3-compatible store (MinIO, Ceph, ...); None: AWS_ENDPOINT_URL, else AWS
    s3_endpoint_url: str | None = None
    # local scratch space when the store is on S3: publication staging, DuckDB's spill files,
    # the runner's lock, the default generation cache
    work_dir: Path = Path("data/work")

    @field_validator("work_dir", mode="before")
    @classmethod
    def _work_dir_local(cls, value: Any) -> Any:
        if is_s3(value):
            raise ValueError(f"storage.work_dir must be a local folder, not {value}")
        return value

    def s3_options(self) -> S3Options:
        return S3Options.from_env(self.s3_endpoint_url)


CONFIG_FILE_ENV = "RAISING_CONFIG_FILE"
# The YAML file `load_settings` is reading, for the settings source of RaisingSettings.
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("raising_config_file", default=None)


class ConfigError(ValueError):
    """A configuration file that cannot be used: missing, not YAML, or not a mapping."""


class _YamlFile(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, with one-line errors for a malformed file."""

    def __init__(self, settings_cls: type[BaseSettings], yaml_file: Path | None) -> None:
        super().__init__(settings_cls, yaml_file=yaml_file, yaml_file_encoding="utf-8")

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            message = f"config file {file_path} is not valid YAML: {problem}{where}"
            raise ConfigError(message) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file_path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(
                f"config file {file_path} must hold a mapping of settings, "
                f"not a {type(data).__name__}"
            )
        return data


class RaisingSettings(BaseSettings):
    """Every setting of the pipeline; env vars RAISING_<FIELD> (nested with __) override."""

    model_config = SettingsConfigDict(
        env_prefix="RAISING_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    landing_dir: StorageLocation = SAMPLE_CORPUS
    store_dir: StorageLocation = Path("data/store")
    codex_path: Path = DEFAULT_CODEX
    identity_path: Path = DEFAULT_IDENTITY
    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    curriculum: CurriculumSettings = Field(default_factory=CurriculumSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    tokenizer: TokenizerSettings = Field(default_factory=TokenizerSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    checks: CheckSettings = Field(default_factory=CheckSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    dataset_card: DatasetCardSettings = Field(default_factory=DatasetCardSettings)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    # how a run executes its steps: in_process (one process a run: the teacher's engine starts
    # once a run; with the Kubernetes run launcher, one pod a shard run) or k8s_job (dagster-k8s'
    # k8s_job_executor: one pod a step, for an openai teacher fleet; needs dagster-k8s)
    executor: Literal["in_process", "k8s_job"] = "in_process"

    @model_validator(mode="after")
    def _s3_endpoint(self) -> RaisingSettings:
        """S3 locations reach the configured endpoint (else the environment's)."""
        options = self.storage.s3_options()
        for name in ("landing_dir", "store_dir"):
            value = getattr(self, name)
            if isinstance(value, S3Path) and value.options != options:
                setattr(self, name, location(value, options))
        return self

    @property
    def teacher_cache_dir(self) -> Path:
        """The generation cache's folder: `teacher.cache_dir`, else beside the store when it is
        local, else under `storage.work_dir` (SQLite needs a local file system)."""
        if self.teacher.cache_dir is not None:
            return self.teacher.cache_dir
        if isinstance(self.store_dir, S3Path):
            return self.storage.work_dir / "teacher_cache"
        return self.store_dir / "teacher_cache"

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest first: explicit arguments, RAISING_* env vars, the YAML file of
        `load_settings` (defaults come last, from the fields)."""
        return (init_settings, env_settings, _YamlFile(settings_cls, _CONFIG_FILE.get()))

    def config_sha(self) -> str:
        """Hash of the settings that shape the output (paths excluded)."""
        shaping = self.model_dump(
            mode="json",
            exclude={
                "landing_dir": True,
                "store_dir": True,
                "storage": True,
                "teacher": {"cache_dir"},
            },
        )
        return sha256_hex(json.dumps(shaping, sort_keys=True))


def load_settings(config_file: Path | None = None, **overrides: Any) -> RaisingSettings:
    """Settings from defaults < YAML config file (`config_file`, else `$RAISING_CONFIG_FILE`) <
    RAISING_* env vars (nested with `__`) < explicit `overrides` (None: not given). Sections merge
    key by key at every level. A missing or malformed config file raises `ConfigError`."""
    chosen = config_file or os.environ.get(CONFIG_FILE_ENV) or None
    if chosen is not None and not Path(chosen).is_file():
        raise ConfigError(f"config file {chosen} does not exist")
    token = _CONFIG_FILE.set(Path(chosen) if chosen is not None else None)
    try:
        return RaisingSettings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _CONFIG_FILE.reset(token)
