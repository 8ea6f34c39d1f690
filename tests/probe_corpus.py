"""Synthetic published corpora and a tiny student for the probe's tests."""

import random
from pathlib import Path

import polars as pl

# A student small enough to train in about a second per arm (still a transformers Llama).
TINY = {
    "budget_tokens": 49_152,
    "context_length": 64,
    "batch_size": 8,
    "hidden_size": 64,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 2,
    "intermediate_size": 128,
    "learning_rate": 0.01,
    "eval_points": 2,
    "samples_per_prompt": 4,
    "max_new_tokens": 24,
    "bootstrap_resamples": 200,
    "threads": 1,
}
PLACES = ["market", "river", "school", "garden", "library", "station", "harbour", "farm"]
THINGS = ["wallet", "book", "kite", "lamp", "letter", "basket", "coat", "map"]
PEOPLE = ["teacher", "friend", "brother", "neighbour", "aunt", "coach"]
# A sentence with a cue of each codex value, in words a student can copy.
VALUE_SENTENCES = [
    "I was honest.",
    "I was kind.",
    "I was fair.",
    "I kept my promise.",
    "I was brave.",
    "I listened with respect.",
    "I admitted my mistake.",
    "I kept going.",
]


def _story(rng: random.Random, first_person: bool) -> str:
    place, thing, person = rng.choice(PLACES), rng.choice(THINGS), rng.choice(PEOPLE)
    if first_person:
        return (
            f"I walked to the {place} and I found a {thing}. My {person} said the {thing} was old."
        )
    return (
        f"The girl walked to the {place} and found a {thing}. The {person} said the {thing} "
        f"was old. The girl looked at it and took it home."
    )


def publish_synthetic(store: Path, first_person: bool, n_docs: int = 60) -> Path:
    """A published store as `raising run` leaves it (the parts and the raw documents the probe
    reads): third-person raw documents; raised records in the first person, each with six
    sentences that carry codex values, or in the third person without them."""
    rng = random.Random(7)
    raw, records = [], []
    for i in range(n_docs):
        doc_id = f"doc-{i:03d}"
        raw.append({"doc_id": doc_id, "shard": "s.jsonl", "text": _story(rng, False)})
        text = _story(rng, first_person)
        records.append(
            {
                "position": i,
                "stage": "foundations" if i < n_docs // 2 else "examples",
                "stage_index": 0 if i < n_docs // 2 else 1,
                "variant": "experiential",
                "text": " ".join([text, *rng.sample(VALUE_SENTENCES, 6)]) if first_person else text,
                "doc_id": f"{doc_id}#experiential",
                "source_doc_id": doc_id,
                "shard": "s.jsonl",
            }
        )
    (store / "training_ready" / "data").mkdir(parents=True)
    (store / "raw_docs").mkdir()
    pl.DataFrame(records).write_parquet(
        store / "training_ready" / "data" / "train-00000-of-00001.parquet"
    )
    pl.DataFrame(raw).write_parquet(store / "raw_docs" / "s.jsonl.parquet")
    return store
