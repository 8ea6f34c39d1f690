"""The seeded, stratified sample of tests/data/real_corpus that value_labels.jsonl labels.

`python scripts/value_label_sample.py draw [--batch N --size K]` prints the sample for reading
(id, shard, text), a batch at a time; `python scripts/value_label_sample.py write LABELS.json`
writes tests/data/value_labels.jsonl from a hand-written JSON object
`{id: {"values": [...], "kind": ..., "lang": ...}}` covering exactly the drawn ids, with each
record's shard and text taken from the corpus. A dev script, not imported by the package.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from pathlib import Path

SEED = 20251129
REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "real_corpus"
LABELS = REPO / "tests" / "data" / "value_labels.jsonl"
VALUES = (
    "honesty",
    "kindness",
    "fairness",
    "responsibility",
    "courage",
    "respect",
    "humility",
    "perseverance",
)
KINDS = ("quotation", "poem", "joke", "dictionary", "techdoc", "qa", "story", "article", "code")
KINDS_ALL = (*KINDS, "other")
VALUE_SYNSET_LEMMAS = frozenset(VALUES)

# Strata (by source, the proxy for kind before reading) and how many records each gives.
STRATA: dict[str, int] = {
    "fortunes-en": 92,
    "songs-poems": 30,
    "fortune-definitions": 20,
    "wordnet": 30,
    "wordnet-value-names": 10,
    "pydoc-topics": 10,
    "python-doc-sections": 15,
    "python-glossary": 5,
    "python-faq": 10,
    "debian-faq": 10,
    "fortunes-de": 6,
    "fortunes-ru": 6,
    "fortunes-es": 6,
}
# A second draw, after the strata above and excluding what they drew: sayings files, where values
# are discussed most often, so each value has more than a handful of positives to measure on.
SAYINGS_FILES = ("literature", "people", "platitudes", "wisdom")
SAYINGS_SAMPLE = 50


def stratum(record: dict[str, str]) -> str:
    """The stratum of a corpus record, from its id and source."""
    rid, package = record["id"], record["source"].split(":", 1)[0]
    if package in {"fortunes-de", "fortunes-ru", "fortunes-es"}:
        return package
    if rid.startswith("fortunes/songs-poems:"):
        return "songs-poems"
    if rid.startswith("fortunes/definitions:"):
        return "fortune-definitions"
    if rid.startswith("fortunes/"):
        return "fortunes-en"
    if rid.startswith("wordnet/"):
        lemmas = record["text"].split(" (", 1)[0].lower().split(", ")
        return "wordnet-value-names" if VALUE_SYNSET_LEMMAS.intersection(lemmas) else "wordnet"
    prefix = rid.split(":", 1)[0].split("/", 1)[0]
    return {
        "pydoc": "pydoc-topics",
        "pydocs": "python-doc-sections",
        "pyglossary": "python-glossary",
        "pyfaq": "python-faq",
        "debian-faq": "debian-faq",
    }[prefix]


def read_corpus() -> list[dict[str, str]]:
    """Every corpus record with its shard name, in shard and line order."""
    records = []
    for path in sorted(CORPUS.glob("shard-*.jsonl.gz")):
        shard = path.name.removesuffix(".jsonl.gz")
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            records += [{**json.loads(line), "shard": shard} for line in handle]
    return records


def draw() -> list[dict[str, str]]:
    """The seeded sample: per stratum, its quota of records (sorted by id before drawing)."""
    by_stratum: dict[str, list[dict[str, str]]] = {name: [] for name in STRATA}
    for record in read_corpus():
        by_stratum[stratum(record)].append(record)
    picked = []
    for name, quota in STRATA.items():
        pool = sorted(by_stratum[name], key=lambda r: r["id"])
        picked += random.Random(f"{SEED}:{name}").sample(pool, quota)
    drawn = {r["id"] for r in picked}
    sayings = [
        r
        for r in by_stratum["fortunes-en"]
        if r["id"].split(":", 1)[0].removeprefix("fortunes/") in SAYINGS_FILES
        and r["id"] not in drawn
    ]
    sayings.sort(key=lambda r: r["id"])
    return picked + random.Random(f"{SEED}:sayings").sample(sayings, SAYINGS_SAMPLE)


def show(batch: int, size: int, max_chars: int) -> None:
    """Print one batch of the sample for reading."""
    sample = draw()[batch * size : (batch + 1) * size]
    for record in sample:
        text = record["text"]
        cut = text if len(text) <= max_chars else text[:max_chars] + f"\n[... {len(text)} chars]"
        title = f" | title: {record['title']}" if record.get("title") else ""
        sys.stdout.write(f"===== {record['id']} ({record['shard']}){title}\n{cut}\n")


def write(labels_path: Path) -> None:
    """value_labels.jsonl from the hand labels, checked against the drawn sample."""
    labels = json.loads(labels_path.read_text(encoding="utf-8"))
    sample = draw()
    drawn = {r["id"] for r in sample}
    if set(labels) != drawn:
        raise SystemExit(
            f"labels and sample differ: missing {sorted(drawn - set(labels))[:5]}, "
            f"extra {sorted(set(labels) - drawn)[:5]}"
        )
    lines = []
    for record in sorted(sample, key=lambda r: r["id"]):
        label = labels[record["id"]]
        unknown = set(label["values"]) - set(VALUES)
        if unknown or label["kind"] not in KINDS_ALL:
            raise SystemExit(f"{record['id']}: bad label {label}")
        out = {
            "id": record["id"],
            "shard": record["shard"],
            "text": record["text"],
            "values": [v for v in VALUES if v in label["values"]],
            "kind": label["kind"],
            "kind_guess": label["kind"],
        }
        if label.get("lang"):
            out["lang"] = label["lang"]
        lines.append(json.dumps(out, ensure_ascii=False) + "\n")
    LABELS.write_text("".join(lines), encoding="utf-8")
    sys.stdout.write(f"{len(lines)} labels -> {LABELS}\n")


def main() -> None:
    """draw or write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    draw_cmd = sub.add_parser("draw")
    draw_cmd.add_argument("--batch", type=int, default=0)
    draw_cmd.add_argument("--size", type=int, default=250)
    draw_cmd.add_argument("--max-chars", type=int, default=3000)
    write_cmd = sub.add_parser("write")
    write_cmd.add_argument("labels", type=Path)
    args = parser.parse_args()
    if args.command == "draw":
        show(args.batch, args.size, args.max_chars)
    else:
        write(args.labels)


if __name__ == "__main__":
    main()
