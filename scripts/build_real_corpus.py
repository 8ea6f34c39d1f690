"""Build tests/data/real_corpus: a seeded slice of real text that nobody on the project wrote.

Sources are Debian packages (fortunes, fortunes-min, fortunes-de, fortunes-ru, fortunes-es,
wordnet-base, python3.11-doc, debian-faq) and the running interpreter's `pydoc_data.topics`.
Install them with

    apt-get install fortunes fortunes-min fortunes-de fortunes-ru fortunes-es \
        wordnet-base python3.11-doc debian-faq

then run `python scripts/build_real_corpus.py`. The same packages and interpreter give
byte-identical shards (fixed seeds, sorted inputs, gzip mtime 0). Texts are kept verbatim: only
the file-format markup between records is removed (`%` separator lines, WordNet's index fields,
reStructuredText heading underlines). A dev script, not imported by the package.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

SEED = 20251129
N_SHARDS = 8
REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tests" / "data" / "real_corpus"
FORTUNES = Path("/usr/share/games/fortunes")
WORDNET = Path("/usr/share/wordnet")
PYDOCS = Path("/usr/share/doc/python3.11/html/_sources")
DEBIAN_FAQ = Path("/usr/share/doc/debian/FAQ/debian-faq.en.txt.gz")

LICENSE_FORTUNES = "BSD-4-Clause-UC (fortune-mod collection); quotations credited to their authors"
LICENSE_FORTUNES_DE = "GPL-2+"
LICENSE_FORTUNES_RU = "GPL-2"
LICENSE_FORTUNES_ES = "public domain (presumed, per the package's copyright file)"
LICENSE_WORDNET = "WordNet-3.0"
LICENSE_PSF = "PSF-2.0"
LICENSE_DEBIAN_FAQ = "Debian FAQ permission notice (copyright SPI; see SOURCES.md)"

# English fortune files and how many records to draw from each: quotations and humour dominate,
# songs-poems and the (humorous) definitions are boosted. `ethnic` (ethnic jokes) is left out,
# and so is everything under off/ (not installed by these packages anyway).
FORTUNE_QUOTAS: dict[str, int] = {
    "songs-poems": 200,
    "people": 110,
    "definitions": 100,
    "wisdom": 90,
    "literature": 70,
    "science": 65,
    "computers": 65,
    "cookie": 65,
    "humorists": 50,
    "politics": 50,
    "work": 50,
    "miscellaneous": 40,
    "riddles": 35,
    "platitudes": 35,
    "law": 30,
    "education": 30,
    "love": 30,
    "art": 30,
    "fortunes": 30,
    "knghtbrd": 30,
    "linux": 25,
    "men-women": 25,
    "zippy": 20,
    "kids": 20,
    "startrek": 20,
    "tao": 20,
    "food": 15,
    "sports": 15,
    "perl": 12,
    "drugs": 10,
    "disclaimer": 10,
    "debian": 10,
    "medicine": 10,
    "linuxcookie": 8,
    "news": 8,
    "goedel": 8,
    "paradoxum": 8,
    "pets": 8,
    "magic": 5,
    "ascii-art": 5,
    "translate-me": 3,
}
FORTUNES_MIN_FILES = frozenset({"fortunes", "literature", "riddles"})
OTHER_LANGUAGE_QUOTAS: dict[str, tuple[str, str, int]] = {
    # subfolder: (package, license, records drawn from all its files together)
    "de": ("fortunes-de", LICENSE_FORTUNES_DE, 55),
    "ru": ("fortunes-ru", LICENSE_FORTUNES_RU, 55),
    "es": ("fortunes-es", LICENSE_FORTUNES_ES, 35),
}
OTHER_LANGUAGE_EXCLUDED = frozenset({"ru/sex"})  # sexual jokes; es/off/ is skipped by path

WORDNET_SAMPLE = 300
# Every synset with one of the codex value names among its lemmas is added to the sample.
CODEX_VALUE_LEMMAS = frozenset(
    {
        "honesty",
        "kindness",
        "fairness",
        "responsibility",
        "courage",
        "respect",
        "humility",
        "perseverance",
    }
)
GLOSSARY_SAMPLE = 40
DOC_SECTION_SAMPLE = 150
DOC_SECTION_MAX_CHARS = 30_000
PYTHON_FAQ_SAMPLE = 80
DEBIAN_FAQ_SAMPLE = 80


@dataclass(frozen=True)
class Doc:
    """One corpus record."""

    id: str
    title: str | None
    text: str
    source: str
    license: str

    def to_json(self) -> str:
        """The JSONL line (no title key when there is no natural title)."""
        record = {k: v for k, v in asdict(self).items() if not (k == "title" and v is None)}
        return json.dumps(record, ensure_ascii=False)


def rng_for(source: str) -> random.Random:
    """A generator per source, so changing one source's quota leaves the others' draws alone."""
    return random.Random(f"{SEED}:{source}")


def sample(items: list[Doc], k: int, source: str) -> list[Doc]:
    """A seeded sample of k items (all when fewer), in id order."""
    items = sorted(items, key=lambda d: d.id)
    picked = items if len(items) <= k else rng_for(source).sample(items, k)
    return sorted(picked, key=lambda d: d.id)


# --- fortunes ---------------------------------------------------------------------------------

FORTUNE_SEPARATOR = re.compile(r"^%\r?\n", re.M)


def fortune_records(path: Path) -> Iterator[tuple[int, str]]:
    """(index, text) of each record of a fortune file; the `%` lines and the newline closing each
    record removed, everything else (tabs, backspaces, CRs) kept. Blank records are skipped."""
    raw = path.read_bytes().decode("utf-8")
    for index, chunk in enumerate(FORTUNE_SEPARATOR.split(raw)):
        text = chunk.rstrip("\r\n")
        if text.strip():
            yield index, text


def english_fortunes() -> list[Doc]:
    """The English fortune files, each sampled to its quota."""
    docs: list[Doc] = []
    for name, quota in sorted(FORTUNE_QUOTAS.items()):
        package = "fortunes-min" if name in FORTUNES_MIN_FILES else "fortunes"
        pool = [
            Doc(f"fortunes/{name}:{i:05d}", None, text, f"{package}:{name}", LICENSE_FORTUNES)
            for i, text in fortune_records(FORTUNES / name)
        ]
        docs += sample(pool, quota, f"fortunes/{name}")
    return docs


def is_fortune_file(path: Path) -> bool:
    """A fortune text file (not a .dat index, a .u8 link or an off/ folder)."""
    return (
        path.is_file()
        and not path.is_symlink()
        and path.suffix not in {".dat", ".u8"}
        and "off" not in path.parts
    )


def other_language_fortunes() -> list[Doc]:
    """German, Russian and Spanish fortunes, each language sampled across all its files."""
    docs: list[Doc] = []
    for lang, (package, license_name, quota) in sorted(OTHER_LANGUAGE_QUOTAS.items()):
        pool: list[Doc] = []
        for path in sorted((FORTUNES / lang).rglob("*")):
            rel = path.relative_to(FORTUNES).as_posix()
            if not is_fortune_file(path) or rel in OTHER_LANGUAGE_EXCLUDED:
                continue
            pool += [
                Doc(f"fortunes/{rel}:{i:05d}", None, text, f"{package}:{rel}", license_name)
                for i, text in fortune_records(path)
            ]
        docs += sample(pool, quota, f"fortunes/{lang}")
    return docs


# --- WordNet ----------------------------------------------------------------------------------

WORDNET_POS = {"noun": "n", "verb": "v", "adj": "adj", "adv": "adv"}
ADJ_MARKER = re.compile(r"\((a|p|ip)\)$")


def wordnet_synsets(pos_file: str) -> Iterator[tuple[str, list[str], str]]:
    """(offset, lemmas, gloss) of each synset in a WordNet data file (license header skipped)."""
    with (WORDNET / f"data.{pos_file}").open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("  "):
                continue
            fields, _, gloss = line.partition(" | ")
            parts = fields.split()
            n_words = int(parts[3], 16)
            lemmas = [
                ADJ_MARKER.sub("", parts[4 + 2 * j]).replace("_", " ") for j in range(n_words)
            ]
            yield parts[0], lemmas, gloss.rstrip()


def wordnet_entries() -> list[Doc]:
    """A seeded sample of WordNet synsets plus every synset of a codex value name, rendered as
    `lemma, lemma (pos): gloss`."""
    pool: list[Doc] = []
    value_synsets: list[Doc] = []
    for pos_file, pos in WORDNET_POS.items():
        for offset, lemmas, gloss in wordnet_synsets(pos_file):
            doc = Doc(
                f"wordnet/{pos}:{offset}",
                lemmas[0],
                f"{', '.join(lemmas)} ({pos}): {gloss}",
                f"wordnet-base:data.{pos_file}",
                LICENSE_WORDNET,
            )
            if CODEX_VALUE_LEMMAS.intersection(lemma.lower() for lemma in lemmas):
                value_synsets.append(doc)
            else:
                pool.append(doc)
    return sample(pool, WORDNET_SAMPLE, "wordnet") + sorted(value_synsets, key=lambda d: d.id)


# --- Python documentation ---------------------------------------------------------------------

RST_ADORNMENT = re.compile(r"^([=\-~^*#\"'+`:.])\1{2,}\s*$")


def rst_sections(text: str) -> Iterator[tuple[str, str]]:
    """(heading, body) of each section of a reStructuredText file: the body runs to the next
    heading; heading underlines and overlines are dropped, the body kept verbatim."""
    lines = text.split("\n")
    heads: list[tuple[int, int, str]] = []  # (first line of the heading block, body start, title)
    for i in range(1, len(lines)):
        title = lines[i - 1]
        if (
            RST_ADORNMENT.match(lines[i])
            and title.strip()
            and not title.startswith(" ")
            and not RST_ADORNMENT.match(title)
            and len(lines[i].rstrip()) >= len(title.rstrip())
        ):
            has_overline = i >= 2 and lines[i - 2].rstrip() == lines[i].rstrip()
            heads.append((i - 2 if has_overline else i - 1, i + 1, title.strip()))
    for n, (_, body_start, title) in enumerate(heads):
        body_end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        body = "\n".join(lines[body_start:body_end]).strip("\n")
        yield title, body


def pydoc_topics() -> list[Doc]:
    """Every topic of the running interpreter's `pydoc_data.topics` (the text `help()` shows),
    its first line as title, the underline after it dropped."""
    from pydoc_data.topics import topics

    docs = []
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for key in sorted(topics):
        title, _, rest = topics[key].partition("\n")
        body = rest.split("\n", 1)[1] if re.match(r"^[*=\-]+\n", rest + "\n") else rest
        docs.append(
            Doc(
                f"pydoc/{key}",
                title.strip(),
                body.strip("\n"),
                f"{version}:pydoc_data.topics",
                LICENSE_PSF,
            )
        )
    return docs


def python_doc_sections() -> list[Doc]:
    """A seeded sample of sections (over 300 characters) of the tutorial, HOWTOs and library
    reference in reStructuredText, markup kept."""
    pool: list[Doc] = []
    for folder in ("tutorial", "howto", "library"):
        for path in sorted((PYDOCS / folder).glob("*.rst.txt")):
            rel = path.relative_to(PYDOCS).as_posix()
            text = path.read_text(encoding="utf-8")
            for n, (title, body) in enumerate(rst_sections(text)):
                if 300 <= len(body) <= DOC_SECTION_MAX_CHARS:
                    pool.append(
                        Doc(
                            f"pydocs/{rel}:{n:03d}",
                            title,
                            body,
                            f"python3.11-doc:{rel}",
                            LICENSE_PSF,
                        )
                    )
    return sample(pool, DOC_SECTION_SAMPLE, "pydocs")


def python_glossary() -> list[Doc]:
    """A seeded sample of the Python glossary's entries: the term, then its indented definition."""
    text = (PYDOCS / "glossary.rst.txt").read_text(encoding="utf-8")
    entries: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        if re.match(r"^ {3}\S", line):
            entries.append((line.strip(), []))
        elif entries and (line.startswith("      ") or not line.strip()):
            entries[-1][1].append(line[3:])
    pool = [
        Doc(
            f"pyglossary:{n:03d}",
            None,
            f"{term}\n" + "\n".join(body).strip("\n"),
            "python3.11-doc:glossary.rst.txt",
            LICENSE_PSF,
        )
        for n, (term, body) in enumerate(entries)
        if "".join(body).strip()
    ]
    return sample(pool, GLOSSARY_SAMPLE, "pyglossary")


def python_faq() -> list[Doc]:
    """A seeded sample of the Python FAQ's questions: the question, a blank line, the answer."""
    pool: list[Doc] = []
    for path in sorted((PYDOCS / "faq").glob("*.rst.txt")):
        rel = path.relative_to(PYDOCS).as_posix()
        for n, (title, body) in enumerate(rst_sections(path.read_text(encoding="utf-8"))):
            if title.endswith("?") and body.strip():
                pool.append(
                    Doc(
                        f"pyfaq/{path.name.removesuffix('.rst.txt')}:{n:03d}",
                        None,
                        f"{title}\n\n{body}",
                        f"python3.11-doc:{rel}",
                        LICENSE_PSF,
                    )
                )
    return sample(pool, PYTHON_FAQ_SAMPLE, "pyfaq")


# --- Debian FAQ -------------------------------------------------------------------------------

DEBIAN_FAQ_HEADING = re.compile(r"^(\d+(?:\.\d+)+)\.\u00a0")


def debian_faq() -> list[Doc]:
    """A seeded sample of the Debian FAQ's questions (section headings ending in `?`), each the
    heading as printed (number, non-breaking space, wrapped lines), a blank line, the answer."""
    lines = gzip.decompress(DEBIAN_FAQ.read_bytes()).decode("utf-8").split("\n")
    starts = [i for i, line in enumerate(lines) if DEBIAN_FAQ_HEADING.match(line)]
    start_set = set(starts)
    chapters = [i for i, line in enumerate(lines) if re.match(r"Chapter\s\d", line)]
    ends = sorted(start_set.union(chapters, [len(lines)]))
    pool: list[Doc] = []
    for start in starts:
        end = min(e for e in ends if e > start)
        head_end = start
        while head_end < end and lines[head_end].strip():
            head_end += 1
        heading = "\n".join(lines[start:head_end])
        answer = "\n".join(lines[head_end:end]).strip("\n")
        number = DEBIAN_FAQ_HEADING.match(lines[start]).group(1)  # type: ignore[union-attr]
        if heading.rstrip().endswith("?") and answer.strip():
            pool.append(
                Doc(
                    f"debian-faq:{number}",
                    None,
                    f"{heading}\n\n{answer}",
                    "debian-faq:debian-faq.en.txt.gz",
                    LICENSE_DEBIAN_FAQ,
                )
            )
    return sample(pool, DEBIAN_FAQ_SAMPLE, "debian-faq")


# --- assembly ---------------------------------------------------------------------------------


def dedupe(docs: list[Doc]) -> tuple[list[Doc], list[Doc]]:
    """Docs with unique texts (the first by id kept) and the duplicates dropped."""
    seen: set[str] = set()
    kept: list[Doc] = []
    dropped: list[Doc] = []
    for doc in sorted(docs, key=lambda d: d.id):
        key = doc.text.strip()
        (dropped if key in seen else kept).append(doc)
        seen.add(key)
    return kept, dropped


def shard_docs(docs: list[Doc]) -> list[list[Doc]]:
    """A seeded shuffle of all docs dealt round-robin into N_SHARDS shards (kinds mixed)."""
    ordered = sorted(docs, key=lambda d: d.id)
    rng_for("shards").shuffle(ordered)
    return [ordered[i::N_SHARDS] for i in range(N_SHARDS)]


def write_gzip(path: Path, text: str) -> None:
    """Gzip text with no file name and mtime 0, so the bytes depend on the text only."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    path.write_bytes(buffer.getvalue())


def package_version(package: str) -> str:
    """The installed Debian version of a package."""
    return subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], check=True, capture_output=True, text=True
    ).stdout


def sources_markdown(docs: list[Doc], shards: list[list[Doc]], dropped: list[Doc]) -> str:
    """SOURCES.md: what each record came from, under which license, and how to rebuild."""
    by_package = Counter(d.source.split(":", 1)[0] for d in docs)
    packages = {
        "fortunes": (
            "English fortune files (quotations, humour, songs, definitions)",
            LICENSE_FORTUNES,
        ),
        "fortunes-min": ("fortunes, literature, riddles", LICENSE_FORTUNES),
        "fortunes-de": ("German fortunes", LICENSE_FORTUNES_DE),
        "fortunes-ru": ("Russian fortunes", LICENSE_FORTUNES_RU),
        "fortunes-es": ("Spanish fortunes (off/ excluded)", LICENSE_FORTUNES_ES),
        "wordnet-base": ("WordNet 3.0 synsets as `lemmas (pos): gloss`", LICENSE_WORDNET),
        "python3.11-doc": (
            "Python FAQ, glossary, tutorial/HOWTO/library sections (rST)",
            LICENSE_PSF,
        ),
        "debian-faq": ("Debian FAQ questions and answers (plain text)", LICENSE_DEBIAN_FAQ),
    }
    version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    rows = [
        f"| `{pkg}` | {package_version(pkg)} | {what} | {lic} | {by_package.get(pkg, 0)} |"
        for pkg, (what, lic) in packages.items()
    ]
    py_key = f"python{sys.version_info.major}.{sys.version_info.minor}"
    rows.append(
        f"| Python {version} stdlib | `pydoc_data.topics` | every `help()` topic | {LICENSE_PSF} "
        f"| {by_package.get(py_key, 0)} |"
    )
    shard_rows = [f"| `shard-{i + 1:02d}.jsonl.gz` | {len(s)} |" for i, s in enumerate(shards)]
    return TEMPLATE.format(
        n_docs=len(docs),
        n_shards=N_SHARDS,
        n_dropped=len(dropped),
        dropped_ids=", ".join(f"`{d.id}`" for d in dropped) or "none",
        rows="\n".join(rows),
        shard_rows="\n".join(shard_rows),
        seed=SEED,
        python=version,
    )


TEMPLATE = """\
# Real corpus: sources

{n_docs} records of real text, none written for this project, in {n_shards} gzipped JSONL shards
(`shard-NN.jsonl.gz`, records shuffled with a fixed seed and dealt round-robin, so each shard
mixes every kind). Each record: `id` (source and position, e.g. `fortunes/people:00123`,
`wordnet/n:05150701`, `debian-faq:1.3`), `title` where the source has a natural one (WordNet
lemma, documentation heading), `text`, `source` (package:file), `license`. There is no `kind`:
the pipeline must infer it. Records whose text repeats another's are dropped, the smaller id
kept ({n_dropped} in this build: {dropped_ids}).

Texts are verbatim: only the markup between records was removed (`%` lines of fortune files,
WordNet's index fields, reStructuredText heading underlines). Their quirks stay: attribution
lines (`\\t\\t-- Mark Twain`), tabs, backspace overstrikes (`_\\bI`, `e'\\be`), BEL and ESC
characters, CRLF line endings (two Russian files), non-breaking spaces (Debian FAQ), rST roles
and directives (Python docs), and entries of a few words next to documentation pages of tens of
thousands of characters.

| package | version | what | license | records |
|---|---|---|---|---|
{rows}

| shard | records |
|---|---|
{shard_rows}

## Rebuild

```
apt-get install fortunes fortunes-min fortunes-de fortunes-ru fortunes-es \\
    wordnet-base python3.11-doc debian-faq
python scripts/build_real_corpus.py          # seed {seed}; this build: Python {python}
```

The same package versions and Python minor version (which owns `pydoc_data.topics`) give
byte-identical shards. CI does not install these packages: the committed files are what the
tests use.

## Selection

- English fortunes: a per-file quota (`FORTUNE_QUOTAS` in the script), quotations and humour
  most, `songs-poems` and `definitions` boosted; `ethnic` excluded; no `off/` files.
- German, Russian, Spanish fortunes: one seeded sample per language over all its files
  (`ru/sex` and `es/off/` excluded).
- WordNet: a seeded sample of all synsets, plus every synset that has a codex value name
  (honesty, kindness, fairness, responsibility, courage, respect, humility, perseverance)
  among its lemmas, whatever the sense ("in this respect" included).
- Python: every `pydoc_data.topics` topic; seeded samples of the glossary, of FAQ sections
  whose heading is a question, and of tutorial/HOWTO/library sections of 300 to 30,000
  characters.
- Debian FAQ: a seeded sample of sections whose heading is a question.

## Licenses and notices

- fortune-mod collection (Debian `fortunes`, `fortunes-min`): BSD license of the Regents of
  the University of California (4.4BSD, clause 3 deleted); the quotations are credited in the
  text to their authors. Copyright (c) 1991 The Regents of the University of California.
- `fortunes-de`: GPL-2+ (Andreas Tille). `fortunes-ru`: GPL-2 (Pavel Maryanov).
  `fortunes-es`: the package states that all fortunes' text and quotes are presumed to be in
  the public domain (its programs are GPL).
- WordNet 3.0, whose license asks that this notice appear on all copies:

  > WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.
  >
  > THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO
  > REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION,
  > PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANT- ABILITY OR FITNESS
  > FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE, DATABASE OR
  > DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER
  > RIGHTS. The name of Princeton University or Princeton may not be used in advertising or
  > publicity pertaining to distribution of the software and/or database. Title to copyright
  > in this software, database and any associated documentation shall at all times remain
  > with Princeton University and LICENSEE agrees to preserve same.

- Python documentation: Copyright (c) 2001-2023 Python Software Foundation, PSF License
  Agreement (version 2).
- The Debian GNU/Linux FAQ: Copyright (c) 1996-2021 Software in the Public Interest.

  > Permission is granted to make and distribute verbatim copies of this document provided
  > the copyright notice and this permission notice are preserved on all copies.
  >
  > Permission is granted to copy and distribute modified versions of this document under
  > the conditions for verbatim copying, provided that the entire resulting derived work is
  > distributed under the terms of a permission notice identical to this one.
  >
  > Permission is granted to copy and distribute translations of this document into another
  > language, under the above conditions for modified versions, except that this permission
  > notice may be included in translations approved by the Free Software Foundation instead
  > of in the original English.
"""


def build() -> tuple[list[Doc], list[Doc]]:
    """Every selected record with duplicates removed, and the duplicates."""
    docs = (
        english_fortunes()
        + other_language_fortunes()
        + wordnet_entries()
        + pydoc_topics()
        + python_doc_sections()
        + python_glossary()
        + python_faq()
        + debian_faq()
    )
    return dedupe(docs)


def main() -> None:
    """Write the shards and SOURCES.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    docs, dropped = build()
    shards = shard_docs(docs)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("shard-*.jsonl.gz"):
        old.unlink()
    for i, shard in enumerate(shards):
        write_gzip(
            args.out / f"shard-{i + 1:02d}.jsonl.gz", "".join(d.to_json() + "\n" for d in shard)
        )
    sources = sources_markdown(docs, shards, dropped)
    (args.out / "SOURCES.md").write_text(sources, encoding="utf-8")
    counts = Counter(d.source.split(":", 1)[0] for d in docs)
    sys.stdout.write(f"{len(docs)} records -> {args.out}\n{dict(sorted(counts.items()))}\n")


if __name__ == "__main__":
    main()
