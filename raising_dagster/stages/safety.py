"""A lexical safety screen: which documents carry harmful content, and why (vectorized)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


class SafetyCategory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z_]*$")
    patterns: tuple[str, ...] = Field(min_length=1)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            re.compile(pattern)
        return patterns


class SafetyLexicon(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    categories: tuple[SafetyCategory, ...]


@cache
def default_lexicon() -> SafetyLexicon:
    text = (resources.files("raising_dagster") / "lexicons" / "safety.yaml").read_text("utf-8")
    return SafetyLexicon.model_validate(yaml.safe_load(text))


def safety_flag(texts: pl.Expr, lexicon: SafetyLexicon | None = None) -> pl.Expr:
    """The first matching harm category of each text, or null when none matches."""
    lexicon = lexicon or default_lexicon()
    flag = pl.lit(None, dtype=pl.String)
    for category in reversed(lexicon.categories):
        pattern = "(?i)" + "|".join(f"(?:{p})" for p in category.patterns)
        flag = pl.when(texts.str.contains(pattern)).then(pl.lit(category.name)).otherwise(flag)
    return flag
