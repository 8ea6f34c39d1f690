"""Kinds of document, and a rule-based guess of the kind when a record does not say.

The rules, checked in this order (the first that matches names the kind; "article" when none):
- code: a fenced block, or most lines look like source code (keywords at line start, lines ending
  in `;`, `{` or `}`).
- forum: "posted by", "reply by", "re:" or "<user> wrote:" at a line start.
- joke (under 200 words): joke formulas ("walks into a bar", "knock knock", "what do you call a",
  "how many ... does it take", "did you hear about", "humor in the court") or a mock law
  ("Murphy's Law:", "Law of Applied Terror:", "Corollary:").
- qa: a question line ("Q:", "Question:") and an answer line ("A:", "Answer:"); a short one whose
  question is a riddle ("What do you call ...", "Why did ...") is a joke instead.
- dictionary (under 300 words): a headword (or several) and a part of speech ("honesty, n.",
  "aerated, charged (adj): ...", "QWERT (kwirt) n. ..."), a headword alone on its line with the
  definition indented below (glossaries), or a one-line "Term: definition" under 60 words.
- qa: a first line that is a question, then its answer (FAQ entries).
- poem: 4+ lines, most of them short (median under 48 characters) and fewer than 60% ending a
  sentence, and not technical (see techdoc); or verse markers ("Chorus:", "Refrain:").
- quotation: under 90 words with an attribution line or tail ("-- Mark Twain", "— Seneca",
  "~ Anon"), or wholly in quotation marks.
- howto, fable, news, dilemma: cue phrases ("how to", "step 1"; "once upon a time", "the moral";
  "officials said"; "should she ...?", "dilemma").
- techdoc (20+ words): technical documentation: at least 3 technical terms per 100 words
  (function, argument, parameter, module, syntax, ...) or inline code (`name()`, `>>>`, `--flag`,
  backticks).
- definition: a short text (under 150 words) opening with "X means ...", "X is defined as ...",
  "X is the quality of ...".
- quotation (aphorism): any other text under 40 words.
"""

from __future__ import annotations

import re
import statistics

KINDS: frozenset[str] = frozenset(
    {
        "definition",
        "dictionary",
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
        "quotation",
        "poem",
        "joke",
        "techdoc",
        "qa",
    }
)

_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import |#include|function |public |private |return\b|"
    r"if \(|for \(|while \(|var |let |const |package |using |#!/)|[;{}]\s*$"
)
_FORUM = re.compile(r"^(reply by|posted by|re:)|^[\w.-]{2,30} (wrote|replied):", re.M | re.I)
_QUESTION = re.compile(r"^\s*(q|question)\s*[:.)]\s*\S", re.M | re.I)
_ANSWER = re.compile(r"^\s*(a|answer)\s*[:.)]\s*\S", re.M | re.I)
_RIDDLE = re.compile(
    r"(?i)\b(what do you (call|get)|why did (the|a)|why do(es)? (the|a)|how do you (make|get|keep)|"
    r"what('s| is) the difference between|what did the)\b"
)
_JOKE = re.compile(
    r"(?i)\b(walk(s|ed)? into a bar|knock,? knock|what do you call (a|an|the)\b|how many \w+"
    r"( \w+)? does it take|did you hear (about|the one)|punch ?line|a (man|woman|guy) (walks|goes|"
    r"went|walked) into|said the \w+ to the \w+|a priest, a|an? (englishman|irishman|scotsman)|"
    r"humou?r in the court|courtroom quote|famous last words|t-shirt of the day)"
)
# "Murphy's Law:", "Second Law of Applied Terror:", "Corollary:" heading a short text
_LAW = re.compile(
    r"(?im)^\s*([\w'-]+'s (law|rule|principle|corollary|axiom|maxim|observation)|"
    r"(\w+ ){0,3}(law|rule|principle|axiom) of [\w ]+|corollary)\s*:"
)
_POS = r"(n|v|vt|vi|adj|adv|prep|conj|pron|interj|noun|verb|adjective|adverb)"
# a headword (or several, comma-separated), maybe a pronunciation, then a part of speech:
# "honesty, n. ...", "aerated, charged (adj): ...", "QWERT (kwirt) n. [...]"
_DICTIONARY = re.compile(
    rf"^\s*[\w'-]+(?:,? [\w'-]+){{0,4}}\s*(?:\([^)\n]{{1,20}}\)\s*)?"
    rf"(?:\({_POS}\.?\)|\[{_POS}\.?\]|,?\s{_POS}\.)\s*[:,]?\s+\S",
    re.I,
)
# a glossary entry: a short headword on its own line, its definition indented below
_GLOSSARY_ENTRY = re.compile(r"^\s*[\w'.()-]+(?: [\w'.()-]+){0,4}:?[ \t]*\n(\t|   )\s*\S")
# a question line, then its answer (FAQs)
_FAQ = re.compile(r"^\s*(\d+(\.\d+)*\.?\s*)?[^\n]{3,200}\?\s*\n\s*\n?\s*\S")
_DASHES = "--|\u2014|\u2013|~"  # two hyphens, em dash, en dash, tilde
_GLOSSARY = re.compile(rf"^\s*[\w'-]+(?: [\w'-]+){{0,3}}\s*(:|{_DASHES})\s+[a-z(]")
_VERSE_MARK = re.compile(r"(?im)^\s*(chorus|refrain|verse \d+)\s*:?\s*$")
_ATTRIBUTION = re.compile(rf"(?m)(^|\s)({_DASHES})\s*[A-Z\"'][^\n]{{0,80}}$")
_QUOTED = re.compile('^\\s*["\u201c].+["\u201d]\\s*$', re.S)
_HOWTO = re.compile(r"^\s*(how to\b|step 1\b)|\bstep 2\b", re.M | re.I)
_FABLE = re.compile(r"\bonce upon a time\b|\bthe moral\b", re.I)
_NEWS = re.compile(
    r"\b(reported|announced|officials said|said on (monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday))\b",
    re.I,
)
_DILEMMA = re.compile(r"\bshould (she|he|they|i|we)\b.*\?|\bdilemma\b", re.I | re.S)
_TECH_TERM = re.compile(
    r"(?i)\b(functions?|methods?|arguments?|parameters?|modules?|syntax|operators?|"
    r"expressions?|statements?|exceptions?|variables?|attributes?|objects?|instances?|classes|"
    r"configuration|options?|commands?|directory|directories|integers?|strings?|boolean|"
    r"returns?|invoked?|implementation|interpreter|compiler|api|bytes?|iterators?|"
    r"default|keyword|tuples?|lists?|dictionar(y|ies)|namespace|runtime)\b"
)
_INLINE_CODE = re.compile(r"\w\(\)|>>>|`[^`\n]+`|(^|\s)--?[a-z][\w-]+|\w+\.\w+\(")
_DEFINITION = re.compile(
    r"^\s*(an?\s+|the\s+)?[\w'-]+(\s+[\w'-]+){0,2}\s+(means|is defined as|refers to|"
    r"is the (quality|act|state|practice|habit|ability|virtue))\b",
    re.I,
)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _is_code(text: str, lines: list[str]) -> bool:
    if "```" in text:
        return True
    code = sum(1 for line in lines if _CODE_LINE.search(line))
    return len(lines) >= 3 and code / len(lines) >= 0.5


def _is_poem(text: str, lines: list[str]) -> bool:
    if _VERSE_MARK.search(text):
        return True
    if len(lines) < 4:
        return False
    body = [line.strip() for line in lines if not _ATTRIBUTION.match(line.strip())]
    if len(body) < 4:
        return False
    ends = sum(1 for line in body if line.endswith((".", "!", "?", '."', '!"', '?"')))
    return statistics.median(len(line) for line in body) < 48 and ends / len(body) < 0.6


def infer_kind(text: str, title: str | None = None) -> str:
    """The kind of a document from cues in its title and text ("article" when nothing matches)."""
    probe = f"{title}\n{text[:4000]}" if title else text[:4000]
    lines = _lines(text[:4000])
    words = len(text.split())
    if _is_code(text[:4000], lines):
        return "code"
    if _FORUM.search(probe):
        return "forum"
    if words < 200 and (_JOKE.search(text) or _LAW.search(text)):
        return "joke"
    if _QUESTION.search(text) and _ANSWER.search(text):
        return "joke" if words < 60 and _RIDDLE.search(text) else "qa"
    if words < 300 and (
        _DICTIONARY.match(text)
        or _GLOSSARY_ENTRY.match(text)
        or (words < 60 and _GLOSSARY.match(text))
    ):
        return "dictionary"
    if words >= 15 and _FAQ.match(text):
        return "qa"
    technical = len(_TECH_TERM.findall(text)) * 100 >= 3 * max(words, 1) or (
        words >= 20 and len(_INLINE_CODE.findall(text)) >= 2
    )
    if not technical and _is_poem(text, lines):
        return "poem"
    if words < 90 and (_ATTRIBUTION.search(text.strip()) or _QUOTED.match(text)):
        return "quotation"
    for kind, pattern in (("howto", _HOWTO), ("fable", _FABLE), ("news", _NEWS)):
        if pattern.search(probe):
            return kind
    if _DILEMMA.search(probe):
        return "dilemma"
    if technical and words >= 20:
        return "techdoc"
    if words < 150 and _DEFINITION.search(probe):
        return "definition"
    if words < 40:
        return "quotation"
    return "article"
