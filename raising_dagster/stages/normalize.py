"""Text normalization at ingest, with the name of every change made to a record.

Steps, in order (each named in the record's `normalized` column when it changed the text):
- `surrogates`: UTF-16 surrogate code points (valid in JSON escapes, not in UTF-8): a proper pair
  becomes its character, a lone one U+FFFD (ftfy `fix_surrogates`).
- `ansi_escapes`: terminal escape sequences (ftfy `remove_terminal_escapes`).
- `mojibake`: UTF-8 read as Latin-1/Windows-1252 and the like, undone (ftfy `fix_encoding`).
- `control_chars`: C0 and C1 controls other than tab, line feed, form feed and carriage return,
  deprecated Arabic controls, interlinear annotation, U+FFFC, U+FEFF (ftfy `remove_control_chars`,
  plus the C1 range).
- `bidi_controls`: bidirectional embeddings, overrides and isolates (U+202A-U+202E,
  U+2066-U+2069; "Trojan Source" reordering). Marks (U+200E, U+200F) stay.
- `noncharacters`: U+FDD0-U+FDEF and U+xFFFE/U+xFFFF of every plane.
- `line_breaks`: CRLF, CR, U+2028, U+2029, U+0085 become LF (ftfy `fix_line_breaks`).
- `nfc`: Unicode NFC composition.
Quotes, ligatures, character widths and HTML entities are left as written. Pure ASCII text with
no control character skips every step but `line_breaks`' check (fast path).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from ftfy import fix_encoding
from ftfy.fixes import (
    fix_line_breaks,
    fix_surrogates,
    remove_control_chars,
    remove_terminal_escapes,
)

_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_C1 = re.compile(r"[\x80-\x9f]")
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_NONCHARACTER = re.compile(
    "[\ufdd0-\ufdef\ufffe\uffff"
    + "".join(
        f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(1, 17)
    )
    + "]"
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What a text may hold and still be empty: whitespace (incl. no-break spaces) and invisible
# format characters (zero-width space/joiners, word joiner, BOM, soft hyphen, bidi marks).
_VISIBLE = re.compile(
    r"[^\s\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)
_SPACES = re.compile(r"\s+")


def _remove_controls(text: str) -> str:
    return _C1.sub("", remove_control_chars(text))


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


STEPS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("surrogates", fix_surrogates),
    ("ansi_escapes", remove_terminal_escapes),
    ("mojibake", fix_encoding),
    ("control_chars", _remove_controls),
    ("bidi_controls", lambda text: _BIDI.sub("", text)),
    ("noncharacters", lambda text: _NONCHARACTER.sub("", text)),
    ("line_breaks", fix_line_breaks),
    ("nfc", _nfc),
)
_ASCII_STEPS = {"ansi_escapes", "control_chars", "line_breaks"}


def normalize_text(text: str) -> tuple[str, list[str]]:
    """The normalized text and the names of the steps that changed it (see the module doc)."""
    plain_ascii = text.isascii()
    if plain_ascii and not _ASCII_CONTROL.search(text):
        return text, []
    changes = []
    for name, step in STEPS:
        if plain_ascii and name not in _ASCII_STEPS:
            continue
        fixed = step(text)
        if fixed != text:
            changes.append(name)
            text = fixed
    return text, changes


def has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def is_blank(text: str) -> bool:
    """Whether a text shows nothing: only whitespace and invisible format characters."""
    return _VISIBLE.search(text) is None


def one_line(text: str) -> str:
    """Runs of whitespace (line breaks included) as one space, trimmed: for titles."""
    return _SPACES.sub(" ", text).strip()
