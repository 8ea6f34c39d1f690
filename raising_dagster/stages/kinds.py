"""Kinds of document, and a rule-based guess of the kind when a record does not say."""

from __future__ import annotations

import re

KINDS: frozenset[str] = frozenset(
    {
        "definition",
        "fable",
        "story",
        "book",
        "encyclopedic",
        "article",
        "news",
        "howto",
        "forum",
        "dilemma",
        "code",
        "essay",
    }
)

# Checked in order; the first rule that matches names the kind.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("code", re.compile(r"```|^\s*(def |class |import |#include|function |public )", re.M)),
    ("forum", re.compile(r"^(reply by|posted by|re:)|^[\w.-]{2,30} (wrote|replied):", re.M | re.I)),
    ("howto", re.compile(r"^\s*(how to\b|step 1\b)|\bstep 2\b", re.M | re.I)),
    ("fable", re.compile(r"\bonce upon a time\b|\bthe moral\b", re.I)),
    (
        "news",
        re.compile(
            r"\b(reported|announced|officials said|said on (monday|tuesday|wednesday|"
            r"thursday|friday|saturday|sunday))\b",
            re.I,
        ),
    ),
    ("dilemma", re.compile(r"\bshould (she|he|they|i|we)\b.*\?|\bdilemma\b", re.I | re.S)),
    ("definition", re.compile(r"^\s*[\w\s'-]{1,40}\b(is|are|means)\b", re.I)),
)


def infer_kind(text: str, title: str | None = None) -> str:
    """The kind of a document from cues in its title and text ("article" when nothing matches)."""
    probe = f"{title}\n{text[:2000]}" if title else text[:2000]
    for kind, pattern in _RULES:
        if kind == "definition" and len(text.split()) > 150:
            continue
        if pattern.search(probe):
            return kind
    return "article"
