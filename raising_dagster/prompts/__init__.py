"""Versioned Jinja2 prompt files: `<stage>/<task>.v<N>.jinja2`, each with an id and a content hash.

A published version is never edited: a changed prompt is a new file with the next version number.
Sampling parameters for a prompt live beside it in `<stage>/<task>.v<N>.yaml` (optional).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import yaml

from raising_dagster.config import sha256_hex

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False
)


@dataclass(frozen=True)
class Prompt:
    """One versioned prompt: its id (`stage/task.vN`), template, sampling parameters and hash."""

    id: str
    source: str
    sampling: dict[str, Any] = field(default_factory=dict)

    @property
    def sha(self) -> str:
        payload = json.dumps({"source": self.source, "sampling": self.sampling}, sort_keys=True)
        return sha256_hex(payload)

    def render(self, **context: Any) -> str:
        return _compile(self.source).render(**context).strip()

    def render_chat(self, **context: Any) -> list[dict[str, str]]:
        """Chat messages from a template with `{% block system %}` and `{% block user %}`: each
        block is rendered alone into one message (a template without blocks is one user message)."""
        template = _compile(self.source)
        if "user" not in template.blocks:
            return [{"role": "user", "content": self.render(**context)}]
        messages = []
        for role in ("system", "user"):
            if role in template.blocks:
                block = template.blocks[role](template.new_context(context))
                messages.append({"role": role, "content": "".join(block).strip()})
        return messages

    def render_prefill(self, **context: Any) -> str | None:
        """The started answer of a template with a `{% block prefill %}` (the model continues
        it), or None."""
        template = _compile(self.source)
        if "prefill" not in template.blocks:
            return None
        return "".join(template.blocks["prefill"](template.new_context(context))).strip()


@cache
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def _files() -> resources.abc.Traversable:
    return resources.files("raising_dagster") / "prompts"


@cache
def load_prompt(prompt_id: str) -> Prompt:
    """Load a prompt by id, e.g. `first_person/template.v1`."""
    stage, _, name = prompt_id.partition("/")
    folder = _files() / stage
    template = folder / f"{name}.jinja2"
    if not stage or not name or not template.is_file():
        raise KeyError(f"no prompt {prompt_id!r}; known: {sorted(list_prompts())}")
    params = folder / f"{name}.yaml"
    sampling = yaml.safe_load(params.read_text(encoding="utf-8")) if params.is_file() else {}
    return Prompt(
        id=prompt_id, source=template.read_text(encoding="utf-8"), sampling=sampling or {}
    )


def list_prompts() -> list[str]:
    """Every prompt id shipped with the package."""
    ids = []
    for stage in _files().iterdir():
        if stage.is_dir():
            ids += [
                f"{stage.name}/{f.name[: -len('.jinja2')]}"
                for f in stage.iterdir()
                if f.name.endswith(".jinja2")
            ]
    return sorted(ids)
