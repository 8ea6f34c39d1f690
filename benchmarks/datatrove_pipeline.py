"""The per-document baseline of `make bench`: what the framing and scoring look like written as a
datatrove pipeline (one Python function a document, 2 tasks), as a datatrove user would.

Per document: the first-person frame, a reflection naming its strongest codex value, a dialogue
with a mentor over its sentences (the three renderings, as plain f-strings), and the scores:
Flesch-Kincaid grade, zlib ratio, value cue counts (the codex's cues, counted on the document's
word counts: whole words, `x*` prefixes, phrases). Records go to Parquet. No quarantine,
lineage, ordering, tokens or checks. Run: python datatrove_pipeline.py LANDING OUT [TASKS
[CODEX]]; prints {"seconds": ...} as JSON.
"""

from __future__ import annotations

import json
import re
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WORDS = re.compile(r"[A-Za-z][A-Za-z'-]*")
LOWER_WORDS = re.compile(r"\w+")
SENTENCES = re.compile(r"[.!?]+(\s|$)")
VOWELS = re.compile(r"(?i)[aeiouy]+")
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


class FrameAndScore:
    """One datatrove step: the three renderings and the scores of each document."""

    name = "frame and score"
    type = "raising"

    def __init__(self, codex_file: str | None = None) -> None:
        self.codex_file = codex_file

    def __call__(self, data: Iterator[Any], rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        from raising_dagster.config import load_codex

        codex = load_codex(Path(self.codex_file) if self.codex_file else None)
        cues = []
        for value in codex.values:
            single = [c.lower() for c in value.cues if " " not in c]
            cues.append(
                (
                    value.name,
                    value.description,
                    frozenset(c for c in single if not c.endswith("*")),
                    tuple(c[:-1] for c in single if c.endswith("*")),
                    [c.lower().rstrip("*") for c in value.cues if " " in c],
                )
            )
        for doc in data:
            text = doc.text
            words = WORDS.findall(text)
            n_words = max(len(words), 1)
            sentences = max(len(SENTENCES.findall(text)), 1)
            syllables = len(VOWELS.findall(text))
            grade = 0.39 * n_words / sentences + 11.8 * syllables / n_words - 15.59
            raw = text.encode()
            lower = text.lower()
            counts = Counter(LOWER_WORDS.findall(lower))
            hits = []
            for name, description, exact, prefixes, phrases in cues:
                found = sum(n for w, n in counts.items() if w in exact or w.startswith(prefixes))
                found += sum(lower.count(p) for p in phrases)
                hits.append((found, name, description))
            hits.sort(key=lambda h: -h[0])
            _, value, description = hits[0]
            title = doc.metadata.get("title") or "this text"
            framed = f'Today I\'m reading "{title}". Let\'s start: "{text}"'
            reflection = f"{framed}\n\nIt made me think about {value}: {description}."
            turns = [f"Mentor: {s}" for s in SENTENCE_SPLIT.split(text) if s]
            dialogue = "\n".join(
                ["Mentor: Let's read this together.", *turns, f"I: So it is about {value}."]
            )
            doc.metadata.update(
                experiential=reflection,
                social=dialogue,
                fk_grade=grade,
                compression_ratio=len(zlib.compress(raw, 6)) / max(len(raw), 1),
                values=[n for c, n, _ in hits if c],
            )
            yield doc


def run(landing: Path, out: Path, tasks: int = 2, codex_file: str | None = None) -> float:
    """Run the pipeline over every `*.jsonl` shard of `landing`; returns its wall seconds."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import ParquetWriter

    start = time.perf_counter()
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(landing), glob_pattern="*.jsonl"),
            FrameAndScore(codex_file),
            ParquetWriter(str(out / "data")),
        ],
        tasks=tasks,
        workers=tasks,
        logging_dir=str(out / "logs"),
        skip_completed=False,
    ).run()
    return time.perf_counter() - start


if __name__ == "__main__":
    args = sys.argv[1:]
    seconds = run(
        Path(args[0]),
        Path(args[1]),
        int(args[2]) if len(args) > 2 else 2,
        args[3] if len(args) > 3 else None,
    )
    sys.stdout.write(json.dumps({"seconds": seconds}) + "\n")
