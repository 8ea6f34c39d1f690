"""Text normalization at ingest, with the name of every change made to a record.

Steps, in order (each named in the record's `normalized` column when it changed the text):
- `surrogates`: UTF-16 surrogate code points (valid in JSON escapes, not in UTF-8): a proper pair
  becomes its character, a lone one U+FFFD (ftfy `fix_surrogates`).
- `ansi_escapes`: terminal escape sequences (ftfy `remove_terminal_escapes`).
- `mojibake` (only with `ingest.fix_mojibake`, off by default: ftfy's test costs about 0.4 ms
  per non-ASCII document): UTF-8 read as Latin-1/Windows-1252 and the like, undone (ftfy
  `fix_encoding`).
- `control_chars`: C0 and C1 controls other than tab, line feed, form feed and carriage return,
  deprecated Arabic controls, interlinear annotation, U+FFFC, U+FEFF (ftfy `remove_control_chars`,
  plus the C1 range).
- `bidi_controls`: bidirectional embeddings, overrides and isolates (U+202A-U+202E,
  U+2066-U+2069; "Trojan Source" reordering). Marks (U+200E, U+200F) stay.
- `noncharacters`: U+FDD0-U+FDEF and U+xFFFE/U+xFFFF of every plane.
- `line_breaks`: CRLF, CR, U+2028, U+2029, U+0085 become LF (ftfy `fix_line_breaks`).
- `nfc`: Unicode NFC composition.
Quotes, ligatures, character widths and HTML entities are left as written. Each step runs only
where a cheap test (one regular expression or a membership test) says it could change the
text, so plain text, ASCII or not, costs a few scans.
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


_LINE_BREAKS = re.compile("[\r\u2028\u2029\x85]")
# Any character one of the removal steps would touch (controls, C1, bidi, deprecated Arabic
# controls, noncharacters, interlinear annotation, U+FFFC, BOM) or any astral character (their
# noncharacters): texts without one skip those steps.
_SUSPECT = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u206f\ufdd0-\ufdef\ufeff"
    "\ufff9-\uffff\U00010000-\U0010ffff]"
)

# Any character a step other than NFC could change (surrogates, ESC, line breaks, _SUSPECT).
_ANY_STEP = re.compile(
    "[\ud800-\udfff\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u206f"
    "\ufdd0-\ufdef\ufeff\ufff9-\uffff\U00010000-\U0010ffff]"
)

Step = tuple[str, Callable[[str], str], Callable[[str], bool]]
STEPS: tuple[Step, ...] = (
    ("surrogates", fix_surrogates, lambda text: _SURROGATE.search(text) is not None),
    ("ansi_escapes", remove_terminal_escapes, lambda text: "\x1b" in text),
    ("mojibake", fix_encoding, lambda text: not text.isascii()),
    ("control_chars", _remove_controls, lambda text: _SUSPECT.search(text) is not None),
    ("bidi_controls", lambda text: _BIDI.sub("", text), lambda text: True),
    ("noncharacters", lambda text: _NONCHARACTER.sub("", text), lambda text: True),
    ("line_breaks", fix_line_breaks, lambda text: _LINE_BREAKS.search(text) is not None),
    ("nfc", _nfc, lambda text: not unicodedata.is_normalized("NFC", text)),
)
_AFTER_CONTROLS = {"bidi_controls", "noncharacters"}  # run only where control_chars looked


def normalize_text(text: str, fix_mojibake: bool = False) -> tuple[str, list[str]]:
    """The normalized text and the names of the steps that changed it (see the module doc).
    Each step runs only where a cheap test says it could change the text."""
    if text.isascii() and not _ASCII_CONTROL.search(text):
        return text, []
    if not fix_mojibake and _ANY_STEP.search(text) is None:  # one scan: only NFC could apply
        return (text, []) if unicodedata.is_normalized("NFC", text) else (_nfc(text), ["nfc"])
    changes = []
    suspect = False
    for name, step, applies in STEPS:
        if name == "mojibake" and not fix_mojibake:
            continue
        if name in _AFTER_CONTROLS and not suspect:
            continue
        if not applies(text):
            continue
        if name == "control_chars":
            suspect = True
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
