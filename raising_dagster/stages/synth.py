"""Synthetic raw corpora for benchmarks: seeded, mixed kinds, lengths and values."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

_PEOPLE = [
    "a farmer",
    "the mayor",
    "a young nurse",
    "an old sailor",
    "a student",
    "the engineer",
    "a shopkeeper",
    "the judge",
    "a journalist",
    "two friends",
    "a scientist",
    "the coach",
]
_ACTS = [
    "found a lost wallet",
    "was offered a bribe",
    "broke a promise",
    "helped a stranger",
    "discovered an error in the report",
    "was asked to keep a secret",
    "shared the last bread",
    "spoke up at the meeting",
    "kept practising after failing",
    "admitted a mistake",
]
_VALUE_SENTENCES = [
    "Telling the truth was harder than lying, but honesty mattered more.",
    "It was a kind thing to do, and the help was never forgotten.",
    "Everyone agreed the decision had to be fair to all sides.",
    "Taking responsibility meant accepting the consequences.",
    "It took courage to speak up when everyone else was afraid.",
    "They listened with respect and treated each other with dignity.",
    "Being humble, they admitted the mistake and asked to be corrected.",
    "With patience and steady effort, they did not give up.",
]
_FILLER = [
    "The weather that season was unusually dry, and the harvest came late.",
    "Consequently, the committee deliberated extensively on the administrative implications.",
    "The river ran past the old mill where the children often played.",
    "Subsequent investigations revealed considerable inconsistencies in the documentation.",
    "Nobody in the village had seen anything like it before.",
    "The institutional framework nevertheless accommodated heterogeneous interpretations.",
    "In the morning the market was busy with carts and voices.",
    "Statistical irregularities precipitated a comprehensive reassessment of methodology.",
]
_KINDS = ["story", "news", "encyclopedic", "dilemma", "fable", "howto", "definition", "forum"]
_MIN_SENTENCES = 3
_DEFAULT_MAX_SENTENCES = 30  # about 170 words a document on average
_WORDS_PER_SENTENCE = 9.8  # measured mean of the sentences above (the opening one has about 5)


def max_sentences(mean_words: int | None) -> int:
    """The most body sentences a document draws (uniformly from 3) for a mean length in words."""
    if mean_words is None:
        return _DEFAULT_MAX_SENTENCES
    return max(_MIN_SENTENCES, round(2 * (mean_words - 5) / _WORDS_PER_SENTENCE) - _MIN_SENTENCES)


def synth_docs(
    n_docs: int, seed: int = 0, mean_words: int | None = None
) -> Iterator[dict[str, str]]:
    """`n_docs` seeded synthetic documents of 40 to about 400 words (about 170 on average), or of
    about `mean_words` words on average (from 40 words to twice that)."""
    rng = random.Random(seed)
    most = max_sentences(mean_words)
    for i in range(n_docs):
        sentences = [f"{rng.choice(_PEOPLE).capitalize()} {rng.choice(_ACTS)}."]
        for _ in range(rng.randint(_MIN_SENTENCES, most)):
            pool = _VALUE_SENTENCES if rng.random() < 0.3 else _FILLER
            sentences.append(rng.choice(pool))
        yield {
            "id": f"synth-{seed}-{i:09d}",
            "title": f"Synthetic document {i}",
            "kind": rng.choice(_KINDS),
            "text": " ".join(sentences),
        }


def write_synth_corpus(
    out_dir: Path, n_docs: int, n_shards: int, seed: int = 0, mean_words: int | None = None
) -> list[Path]:
    """Write `n_docs` synthetic documents as `n_shards` JSONL shards; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"synth-{s:05d}.jsonl" for s in range(n_shards)]
    handles = [p.open("w", encoding="utf-8") for p in paths]
    try:
        for i, doc in enumerate(synth_docs(n_docs, seed, mean_words)):
            handles[i % n_shards].write(json.dumps(doc) + "\n")
    finally:
        for handle in handles:
            handle.close()
    return paths
