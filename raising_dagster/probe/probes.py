"""The probes' prompts (package data), judges and intervals; pure Python, no torch.

- persona: a completion is in the first person singular when the pipeline's own first-person
  detector (stages/framing.py) finds an I/me/my in it; it takes on another named narrator when
  the speaker names itself as someone other than the identity's "I" ("my name is Tom").
- values: the cue judge counts a completion as going the prompt's value's way when it matches
  the codex value's cues or the prompt's `toward` phrases and none of its `away` phrases.
- intervals: percentile bootstrap, over prompts for shares (every sample of a prompt, over every
  seed, moves together) and over held-out documents for perplexities and their ratios.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raising_dagster.config import CodexValue, IdentityCard, ValueCodex
from raising_dagster.stages.framing import FIRST_PERSON

_PROMPTS = "probe/prompts"
DEFAULT_PERSONA_PROMPTS = "persona.v1.yaml"
DEFAULT_VALUE_PROMPTS = "values.v1.yaml"
_FIRST_PERSON = re.compile(FIRST_PERSON)
# The speaker names itself: "my name is X" / "call me X" (strong), "I am X" / "I'm X" (weak: X
# counts as a name only when it is not a common English word, so "I'm Glad" or "I'm It" do not).
_STRONG_NAMING = re.compile(r"\b(?:[Mm]y name is|[Cc]all me)\s+([A-Z][a-z]+)\b")
_WEAK_NAMING = re.compile(r"\b(?:I am|I'm)\s+([A-Z][a-z]+)\b")
_FUNCTION_WORDS = frozenset(
    "a an the it this that these those not so just very also here there now what who how why "
    "when where which".split()
)


@cache
def _common_words() -> frozenset[str]:
    path = resources.files("raising_dagster") / "lexicons" / "common_words_en.txt"
    return frozenset(w.strip().lower() for w in path.read_text("utf-8").split() if w.strip())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonaPrompt(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str = Field(min_length=1)


class ValuePrompt(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    value: str
    text: str = Field(min_length=1)
    toward: tuple[str, ...] = ()
    away: tuple[str, ...] = ()

    @field_validator("toward", "away")
    @classmethod
    def _lower(cls, phrases: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(p.strip().lower() for p in phrases)
        if any(not p for p in cleaned):
            raise ValueError("phrases must be non-empty")
        return cleaned


class _PromptSet(_Strict):
    version: int

    @model_validator(mode="after")
    def _unique_ids(self) -> _PromptSet:
        ids = [p.id for p in self.prompts]  # type: ignore[attr-defined]
        if len(set(ids)) != len(ids):
            raise ValueError(f"prompt ids must be unique, got {ids}")
        return self


class PersonaPrompts(_PromptSet):
    prompts: tuple[PersonaPrompt, ...] = Field(min_length=1)


class ValuePrompts(_PromptSet):
    prompts: tuple[ValuePrompt, ...] = Field(min_length=1)


def _load(model: type[_PromptSet], path: Path | None, default: str) -> tuple[Any, str]:
    if path is None:
        source = (resources.files("raising_dagster") / _PROMPTS / default).read_text("utf-8")
        name = f"{_PROMPTS}/{default}"
    else:
        source, name = Path(path).read_text(encoding="utf-8"), str(path)
    try:
        return model.model_validate(yaml.safe_load(source)), name
    except (yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"invalid probe prompts in {name}: {exc}") from exc


def load_persona_prompts(path: Path | None = None) -> tuple[PersonaPrompts, str]:
    """The persona probe's neutral prompts and where they came from."""
    return _load(PersonaPrompts, path, DEFAULT_PERSONA_PROMPTS)


def load_value_prompts(path: Path | None = None) -> tuple[ValuePrompts, str]:
    """The values probe's choice prompts and where they came from."""
    return _load(ValuePrompts, path, DEFAULT_VALUE_PROMPTS)


def phrase_pattern(phrases: tuple[str, ...]) -> str | None:
    """A case-insensitive regex matching any phrase at a word start (like the codex cues)."""
    if not phrases:
        return None
    alternatives = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in phrases)
    return rf"(?i)\b(?:{alternatives})"


@dataclass(frozen=True)
class ValueJudge:
    """The cue judge of one value prompt."""

    prompt: ValuePrompt
    value: CodexValue

    def verdict(self, completion: str) -> bool:
        """True when the completion goes the value's way by the cues."""
        toward = [self.value.cue_pattern, phrase_pattern(self.prompt.toward)]
        away = phrase_pattern(self.prompt.away)
        if away and re.search(away, completion):
            return False
        return any(p and re.search(p, completion) for p in toward)

    def patterns(self) -> list[str]:
        """Every pattern the judge matches (toward and away)."""
        found = [self.value.cue_pattern, phrase_pattern(self.prompt.toward)]
        return [p for p in [*found, phrase_pattern(self.prompt.away)] if p]


def value_judges(prompts: ValuePrompts, codex: ValueCodex) -> tuple[list[ValueJudge], list[dict]]:
    """A cue judge per prompt whose value is in the codex; the others, each with its reason."""
    judges, skipped = [], []
    for prompt in prompts.prompts:
        if prompt.value in codex.names:
            judges.append(ValueJudge(prompt, codex.get(prompt.value)))
        else:
            skipped.append(
                {"id": prompt.id, "reason": f"value {prompt.value!r} is not in the codex"}
            )
    if not judges:
        raise ValueError(
            f"no value prompt names a value of the codex {codex.names}: set probe.value_prompts"
        )
    return judges, skipped


def is_first_person(completion: str) -> bool:
    """The pipeline's first-person detector on the whole completion."""
    return bool(_FIRST_PERSON.search(completion))


def other_narrator(completion: str, identity: IdentityCard) -> str | None:
    """The name a completion's speaker gives itself, when it is not the identity's "I"."""
    allowed = {identity.name, *(part for p in identity.people for part in p.name.split())}
    named = [m[1] for m in _STRONG_NAMING.finditer(completion)]
    named = [n for n in named if n.lower() not in _FUNCTION_WORDS]
    named += [
        m[1] for m in _WEAK_NAMING.finditer(completion) if m[1].lower() not in _common_words()
    ]
    return next((n for n in named if n not in allowed), None)


@dataclass(frozen=True)
class Interval:
    """An estimate with a percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def share_interval(
    hits: np.ndarray, counts: np.ndarray, resamples: int, confidence: float, seed: int
) -> Interval:
    """Share of hits over all completions, with an interval from resampling prompts (clusters):
    `hits[i]` and `counts[i]` are prompt i's judged and total completions."""
    hits, counts = np.asarray(hits, dtype=float), np.asarray(counts, dtype=float)
    if counts.sum() == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(hits), size=(resamples, len(hits)))
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = hits[picks].sum(axis=1) / counts[picks].sum(axis=1)
    return Interval(float(hits.sum() / counts.sum()), *_percentiles(shares, confidence))


def perplexity_interval(nll: np.ndarray, resamples: int, confidence: float, seed: int) -> Interval:
    """Token-level perplexity exp(sum nll / tokens) over documents (rows: nll sum, tokens), with
    an interval from resampling documents."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(nll), size=(resamples, len(nll)))
    boot = np.exp(nll[picks, 0].sum(axis=1) / nll[picks, 1].sum(axis=1))
    return Interval(
        float(np.exp(nll[:, 0].sum() / nll[:, 1].sum())), *_percentiles(boot, confidence)
    )


def ratio_interval(
    nll: np.ndarray, reference: np.ndarray, resamples: int, confidence: float, seed: int
) -> Interval:
    """Perplexity ratio of two models on the same documents, resampling documents in pairs."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(nll), size=(resamples, len(nll)))

    def ratio(rows: Any) -> Any:
        tokens = nll[rows, 1].sum(axis=-1)
        return np.exp((nll[rows, 0].sum(axis=-1) - reference[rows, 0].sum(axis=-1)) / tokens)

    return Interval(float(ratio(np.arange(len(nll)))), *_percentiles(ratio(picks), confidence))


def mean_loss_interval(nll: np.ndarray, resamples: int, confidence: float, seed: int) -> Interval:
    """Mean loss per token (nats) over documents, with an interval from resampling documents."""
    if len(nll) == 0 or nll[:, 1].sum() == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(nll), size=(resamples, len(nll)))
    boot = nll[picks, 0].sum(axis=1) / nll[picks, 1].sum(axis=1)
    return Interval(float(nll[:, 0].sum() / nll[:, 1].sum()), *_percentiles(boot, confidence))
