"""The student probe's settings: one pydantic model, the `probe:` section of the settings.

The defaults are the CPU budget (about ten minutes on 2 cores for the demo corpus); a GPU scales
up by configuration: a bigger `budget_tokens`, model, `context_length`, more `seeds`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ProbeSettings(BaseModel):
    """How the student probe trains its small models and probes them (the same for every arm)."""

    model_config = ConfigDict(extra="forbid")

    # training: the same budget, architecture and seeds for every arm
    budget_tokens: int = Field(default=160_000, ge=1)  # training tokens per arm and seed
    device: Literal["cpu", "cuda"] = "cpu"
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    threads: int | None = Field(default=None, ge=1)  # torch CPU threads (None: torch's default)
    split_seed: int = 0  # which source documents are held out (the same for every seed)
    heldout_share: float = Field(default=0.1, gt=0.0, lt=0.5)  # of source documents, per stage
    # raised_ordered over several epochs: the curriculum cut into this many windows by position
    # (each of at least 16 records), each passed over for the epochs the budget allows before the
    # next, so the order spans the whole budget; 1: the whole curriculum again every epoch
    curriculum_windows: int = Field(default=8, ge=1)
    context_length: int = Field(default=256, ge=8)
    batch_size: int = Field(default=8, ge=1)
    hidden_size: int = Field(default=128, ge=8)
    num_layers: int = Field(default=4, ge=1)
    num_heads: int = Field(default=4, ge=1)
    num_kv_heads: int = Field(default=4, ge=1)
    intermediate_size: int = Field(default=512, ge=8)
    learning_rate: float = Field(default=2e-3, gt=0.0)
    warmup_share: float = Field(default=0.05, ge=0.0, lt=1.0)
    min_lr_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    grad_clip: float = Field(default=1.0, gt=0.0)
    dtype: Literal["float32", "bfloat16"] = "float32"
    # only the token ids that occur in the probe's texts get an embedding row (same for all arms)
    compact_vocab: bool = True
    eval_points: int = Field(default=8, ge=1)  # held-out stage losses measured along training
    # generation for the persona and values probes
    samples_per_prompt: int = Field(default=4, ge=1)
    max_new_tokens: int = Field(default=48, ge=1)
    temperature: float = Field(default=0.8, gt=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)  # 1.0: plain sampling (no sort)
    persona_prompts: Path | None = None  # YAML; default: the package's probe/prompts/persona.v1
    value_prompts: Path | None = None  # YAML; default: the package's probe/prompts/values.v1
    # the values judge: codex cues, or the configured teacher LLM (vllm/openai) beside the cues
    judge: Literal["cue", "teacher"] = "cue"
    judge_prompt: str = "probe/judge.v1"
    # intervals: percentile bootstrap over prompts (shares) and held-out documents (perplexity)
    bootstrap_resamples: int = Field(default=2000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be unique, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def _heads_fit(self) -> ProbeSettings:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads {self.num_heads} must be a multiple of num_kv_heads {self.num_kv_heads}"
            )
        if self.max_new_tokens >= self.context_length:
            raise ValueError(
                f"max_new_tokens {self.max_new_tokens} must be below context_length "
                f"{self.context_length} (the prompt needs room)"
            )
        return self
