"""Value detection and kind inference measured on the real corpus (tests/data/real_corpus).

`python benchmarks/eval_real_corpus.py` prints three tables:
1. per codex value, the precision, recall and F1 of `stages.values.detect_values` (default
   codex) against the hand labels in tests/data/value_labels.jsonl, micro- and macro-averaged,
   and the same for "has any value";
   and how many documents of the whole corpus it gives a value;
2. the kinds `stages.kinds.infer_kind` gives the whole corpus;
3. on the labelled documents, hand-labelled kind against inferred kind.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

import polars as pl

from raising_dagster.config import load_codex
from raising_dagster.stages.kinds import infer_kind
from raising_dagster.stages.values import detect_values

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "real_corpus"
LABELS = ROOT / "tests" / "data" / "value_labels.jsonl"


def read_corpus(corpus: Path) -> list[dict[str, str]]:
    """Every record of the corpus shards, in shard and line order."""
    records = []
    for path in sorted(corpus.glob("shard-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            records += [json.loads(line) for line in handle]
    return records


def read_labels(path: Path) -> list[dict[str, object]]:
    """The hand-labelled records."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def ratio(num: int, den: int) -> float | None:
    """num / den, None when den is 0."""
    return num / den if den else None


def fmt(x: float | None) -> str:
    """A ratio to 3 decimals, or a dash when undefined."""
    return "    -" if x is None else f"{x:.3f}"


def f1(p: float | None, r: float | None) -> float | None:
    """The harmonic mean of precision and recall."""
    if p is None or r is None or p + r == 0:
        return None
    return 2 * p * r / (p + r)


def value_table(labels: list[dict[str, object]]) -> list[str]:
    """Per-value precision, recall, F1 of the cue detector against the hand labels."""
    codex = load_codex()
    frame = detect_values(pl.DataFrame({"text": [str(r["text"]) for r in labels]}), codex)
    predicted = [set(v) for v in frame["detected_values"].to_list()]
    truth = [set(r["values"]) for r in labels]  # type: ignore[arg-type]
    lines = [
        f"Value detection, default codex, {len(labels)} hand-labelled documents "
        f"({sum(1 for t in truth if t)} with a value)",
        f"{'value':<15} {'support':>7} {'predicted':>9} {'tp':>4} {'fp':>4} {'fn':>4} "
        f"{'precision':>9} {'recall':>7} {'f1':>6}",
    ]
    totals = Counter()
    per_value_f1 = []
    for name in codex.names:
        tp = sum(1 for p, t in zip(predicted, truth, strict=True) if name in p and name in t)
        fp = sum(1 for p, t in zip(predicted, truth, strict=True) if name in p and name not in t)
        fn = sum(1 for p, t in zip(predicted, truth, strict=True) if name not in p and name in t)
        totals.update(tp=tp, fp=fp, fn=fn)
        p, r = ratio(tp, tp + fp), ratio(tp, tp + fn)
        per_value_f1.append(f1(p, r) or 0.0)
        lines.append(
            f"{name:<15} {tp + fn:>7} {tp + fp:>9} {tp:>4} {fp:>4} {fn:>4} "
            f"{fmt(p):>9} {fmt(r):>7} {fmt(f1(p, r)):>6}"
        )
    tp, fp, fn = totals["tp"], totals["fp"], totals["fn"]
    p, r = ratio(tp, tp + fp), ratio(tp, tp + fn)
    lines.append(
        f"{'micro':<15} {tp + fn:>7} {tp + fp:>9} {tp:>4} {fp:>4} {fn:>4} "
        f"{fmt(p):>9} {fmt(r):>7} {fmt(f1(p, r)):>6}"
    )
    lines.append(f"{'macro f1':<15} {sum(per_value_f1) / len(per_value_f1):>57.3f}")
    any_tp = sum(1 for p, t in zip(predicted, truth, strict=True) if p and t)
    any_fp = sum(1 for p, t in zip(predicted, truth, strict=True) if p and not t)
    any_fn = sum(1 for p, t in zip(predicted, truth, strict=True) if not p and t)
    p, r = ratio(any_tp, any_tp + any_fp), ratio(any_tp, any_tp + any_fn)
    lines.append(
        f"{'any value':<15} {any_tp + any_fn:>7} {any_tp + any_fp:>9} {any_tp:>4} {any_fp:>4} "
        f"{any_fn:>4} {fmt(p):>9} {fmt(r):>7} {fmt(f1(p, r)):>6}"
    )
    return lines


def corpus_value_rate(records: list[dict[str, str]]) -> list[str]:
    """How many corpus documents the detector gives at least one value."""
    frame = detect_values(pl.DataFrame({"text": [r["text"] for r in records]}), load_codex())
    n = int((frame["n_values"] > 0).sum())
    return [
        f"Whole corpus: the detector gives {n} of {len(records)} documents "
        f"({n / len(records):.1%}) at least one value"
    ]


def kind_table(records: list[dict[str, str]]) -> list[str]:
    """The distribution of inferred kinds over the whole corpus."""
    kinds = Counter(infer_kind(r["text"], r.get("title")) for r in records)
    lines = [f"Inferred kinds, whole corpus ({len(records)} documents)"]
    lines += [f"{kind:<15} {n:>6} {n / len(records):>7.1%}" for kind, n in kinds.most_common()]
    return lines


def kind_crosstab(labels: list[dict[str, object]], records: list[dict[str, str]]) -> list[str]:
    """Hand-labelled kind (rows) against inferred kind (columns) on the labelled documents."""
    titles = {r["id"]: r.get("title") for r in records}
    pairs = Counter(
        (
            str(r["kind"]) + (f"/{r['lang']}" if r.get("lang") else ""),
            infer_kind(str(r["text"]), titles[str(r["id"])]),
        )
        for r in labels
    )
    rows = sorted({a for a, _ in pairs})
    cols = sorted({b for _, b in pairs})
    lines = [
        "Hand-labelled kind (rows) against inferred kind (columns)",
        f"{'':<14}" + "".join(f"{c[:10]:>11}" for c in cols),
    ]
    lines += [f"{row:<14}" + "".join(f"{pairs.get((row, c), 0):>11}" for c in cols) for row in rows]
    right = sum(n for (label, inferred), n in pairs.items() if label.split("/")[0] == inferred)
    lines.append(f"kind accuracy: {right} of {len(labels)} ({right / len(labels):.1%})")
    return lines


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--labels", type=Path, default=LABELS)
    args = parser.parse_args()
    labels = read_labels(args.labels)
    records = read_corpus(args.corpus)
    out = [
        *value_table(labels),
        *corpus_value_rate(records),
        "",
        *kind_table(records),
        "",
        *kind_crosstab(labels, records),
    ]
    print("\n".join(out))  # noqa: T201 - a benchmark script reports on stdout


if __name__ == "__main__":
    main()
