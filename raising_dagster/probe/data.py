"""The probe's data: a published corpus read back as a trainer would, held-out documents, the arms.

A published store holds `training_ready/data/*.parquet` (the records; read by `position`, the
order-preserving path a trainer uses) and `raw_docs/<shard>.parquet` (each record's source text,
by `source_doc_id` and `shard`). A seeded share of source documents per curriculum stage is held
out: their raw text measures the knowledge kept, their raised records the stage losses, and no
arm trains on any of it. Every record and source document is either trained on or held out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
from tokenizers import Tokenizer

from raising_dagster.config import sha256_hex
from raising_dagster.stages.tokenize import special_tokens

ARMS: tuple[str, ...] = ("raw", "raised_ordered", "raised_shuffled")
RECORD_COLUMNS: tuple[str, ...] = (
    "position",
    "stage",
    "stage_index",
    "variant",
    "text",
    "source_doc_id",
    "shard",
)


MIN_WINDOW_RECORDS = 16  # the fewest records a curriculum window of the ordered arm holds


class ProbeInputError(ValueError):
    """The store holds no usable published corpus for the probe; the message says what is wrong."""


@dataclass(frozen=True)
class PublishedCorpus:
    """The published records (position order) and their source documents, with the split."""

    records: pl.DataFrame  # RECORD_COLUMNS + heldout
    sources: pl.DataFrame  # shard, source_doc_id, stage, stage_index, text, heldout
    stages: list[str]  # curriculum stages in order

    def arm_texts(self) -> dict[str, list[str]]:
        """Each arm's training documents in its base order (the shuffled arms are reshuffled
        every epoch by the trainer): raw source texts; the raised records by position."""
        raised = self.records.filter(~pl.col("heldout"))["text"].to_list()
        raw = self.sources.filter(~pl.col("heldout")).sort("shard", "source_doc_id")
        return {"raw": raw["text"].to_list(), "raised_ordered": raised, "raised_shuffled": raised}

    def heldout_raw(self) -> list[str]:
        """The held-out source documents' raw text (the knowledge-kept probe)."""
        return (
            self.sources.filter(pl.col("heldout")).sort("shard", "source_doc_id")["text"].to_list()
        )

    def heldout_by_stage(self) -> dict[str, list[str]]:
        """The held-out documents' raised records, per curriculum stage (the order probe)."""
        held = self.records.filter(pl.col("heldout"))
        return {s: held.filter(pl.col("stage") == s)["text"].to_list() for s in self.stages}

    def summary(self) -> dict[str, object]:
        """Counts that add up: records and source documents, trained on or held out, per stage."""
        per_stage = {}
        for stage in self.stages:
            recs = self.records.filter(pl.col("stage") == stage)
            docs = self.sources.filter(pl.col("stage") == stage)
            per_stage[stage] = {
                "records": recs.height,
                "heldout_records": int(recs["heldout"].sum()),
                "source_docs": docs.height,
                "heldout_source_docs": int(docs["heldout"].sum()),
            }
        return {
            "records": self.records.height,
            "heldout_records": int(self.records["heldout"].sum()),
            "source_docs": self.sources.height,
            "heldout_source_docs": int(self.sources["heldout"].sum()),
            "stages": per_stage,
        }


def read_published(store: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The published records in position order and their source documents' raw text."""
    parts = sorted((store / "training_ready" / "data").glob("*.parquet"))
    if not parts:
        raise ProbeInputError(
            f"no published corpus at {store / 'training_ready'} (no data/*.parquet): "
            "publish one first (`raising run --out STORE`)"
        )
    records = pl.scan_parquet(parts)
    missing = [c for c in RECORD_COLUMNS if c not in records.collect_schema()]
    if missing:
        raise ProbeInputError(f"the published parts under {store} lack columns {missing}")
    records = records.select(RECORD_COLUMNS).sort("position").collect()
    positions = records["position"].to_numpy()
    if not np.array_equal(positions, np.arange(records.height)):
        raise ProbeInputError(
            f"the published positions under {store} are not 0..{records.height - 1}"
        )
    nulls = [c for c in RECORD_COLUMNS if records[c].null_count()]
    if nulls:
        raise ProbeInputError(f"the published records under {store} have nulls in {nulls}")
    sources = _source_documents(store, records)
    return records, sources


def _source_documents(store: Path, records: pl.DataFrame) -> pl.DataFrame:
    """One row per source document of the records: its raw text and its (earliest) stage."""
    wanted = records.group_by("shard", "source_doc_id").agg(
        pl.col("stage_index").min(), pl.col("stage").sort_by("stage_index").first()
    )
    frames = []
    for shard in sorted(wanted["shard"].unique().to_list()):
        path = store / "raw_docs" / f"{shard}.parquet"
        if not path.is_file():
            raise ProbeInputError(f"the raw documents of shard {shard!r} are missing: {path}")
        raw = pl.read_parquet(path, columns=["doc_id", "text"]).rename({"doc_id": "source_doc_id"})
        frames.append(raw.with_columns(pl.lit(shard).alias("shard")))
    raw_docs = pl.concat(frames).unique(["shard", "source_doc_id"], keep="first")
    sources = wanted.join(raw_docs, on=["shard", "source_doc_id"], how="left")
    unknown = sources.filter(pl.col("text").is_null())
    if unknown.height:
        names = [
            f"{r['shard']}:{r['source_doc_id']}" for r in unknown.head(10).iter_rows(named=True)
        ]
        raise ProbeInputError(
            f"{unknown.height} published records' source documents are not in raw_docs: {names}"
        )
    return sources.sort("stage_index", "shard", "source_doc_id")


def split_heldout(sources: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """Mark a seeded share of source documents per stage as held out: round(share * n), at least
    one where a stage has two or more documents, never all of a stage's documents."""
    ranked = sources.with_columns(
        pl.struct("shard", "source_doc_id")
        .map_elements(
            lambda r: sha256_hex(f"probe:{seed}:{r['shard']}:{r['source_doc_id']}"),
            return_dtype=pl.String,
        )
        .alias("_rank")
    )
    parts = []
    for (_,), group in ranked.group_by(["stage_index"], maintain_order=True):
        n = group.height
        take = min(max(round(share * n), 1 if n >= 2 else 0), n - 1)
        group = group.sort("_rank").with_columns((pl.int_range(pl.len()) < take).alias("heldout"))
        parts.append(group)
    return pl.concat(parts).drop("_rank").sort("stage_index", "shard", "source_doc_id")


def load_corpus(store: Path, heldout_share: float, split_seed: int) -> PublishedCorpus:
    """The published corpus under `store`, split into trained-on and held-out documents."""
    records, sources = read_published(store)
    sources = split_heldout(sources, heldout_share, split_seed)
    records = records.join(
        sources.select("shard", "source_doc_id", "heldout"),
        on=["shard", "source_doc_id"],
        how="left",
    ).sort("position")
    stages = records.select("stage_index", "stage").unique().sort("stage_index")["stage"].to_list()
    return PublishedCorpus(records=records, sources=sources, stages=stages)


@dataclass(frozen=True)
class Vocab:
    """The student's vocabulary: the corpus tokenizer's ids, compacted to those the probe's texts
    use (`compact`), so the embedding and output layers stay small; the same for every arm."""

    tokenizer: Tokenizer
    ids: np.ndarray  # student id -> tokenizer id
    eos: int  # student id of the end-of-document token

    @classmethod
    def build(
        cls, tokenizer: Tokenizer, texts: Iterable[str], compact: bool, eos_token: str
    ) -> Vocab:
        """`eos_token`: the corpus's end-of-document token (`tokenizer.eos_token`)."""
        specials = special_tokens(tokenizer)
        if eos_token not in specials:
            raise ValueError(f"{eos_token!r} is not a special token of the corpus tokenizer")
        end = specials[eos_token]
        if not compact:
            return cls(tokenizer, np.arange(tokenizer.get_vocab_size(), dtype=np.int64), end)
        seen = {end}
        for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False):
            seen.update(encoding.ids)
        ids = np.array(sorted(seen), dtype=np.int64)
        return cls(tokenizer, ids, int(np.searchsorted(ids, end)))

    @property
    def size(self) -> int:
        return len(self.ids)

    def encode(self, texts: list[str], append_eos: bool = True) -> list[np.ndarray]:
        """Student ids of each text (plus the end-of-document id)."""
        out = []
        for encoding in self.tokenizer.encode_batch(texts, add_special_tokens=False):
            raw = np.asarray(encoding.ids, dtype=np.int64)
            student = np.searchsorted(self.ids, raw)
            if len(raw) and (
                student.max() >= len(self.ids) or not np.array_equal(self.ids[student], raw)
            ):
                raise ValueError("a text holds token ids outside the probe's vocabulary")
            out.append(np.append(student, self.eos) if append_eos else student)
        return out

    def decode(self, student_ids: np.ndarray) -> str:
        """The text of student ids, up to the first end-of-document id."""
        ids = np.asarray(student_ids, dtype=np.int64)
        ends = np.flatnonzero(ids == self.eos)
        if len(ends):
            ids = ids[: ends[0]]
        return self.tokenizer.decode(self.ids[ids].tolist(), skip_special_tokens=True)


def windowed_curriculum(
    docs: list[np.ndarray], windows: int, budget_tokens: int
) -> list[np.ndarray]:
    """The ordered documents for a budget of several epochs, with the order spanning the whole
    budget: the curriculum is cut into `windows` consecutive windows by position (fewer when a
    window would hold under MIN_WINDOW_RECORDS records: a student passing over a handful of
    records many times memorizes them), and each window is passed over in position order for the
    same number of epochs (budget / corpus tokens, fractional) before the next, so training ends
    on the curriculum's end. One window repeats the whole curriculum from its start every epoch,
    as a trainer reading the token files would."""
    total = sum(len(d) for d in docs)
    windows = min(windows, len(docs) // MIN_WINDOW_RECORDS)
    if windows <= 1 or total == 0:
        return docs
    epochs = budget_tokens / total
    bounds = np.linspace(0, len(docs), windows + 1).round().astype(int)
    out: list[np.ndarray] = []
    for start, end in pairwise(bounds):
        window = [d for d in docs[start:end] if len(d)]
        target = epochs * sum(len(d) for d in window)
        made = 0
        while window and made < target:
            for doc in window:
                out.append(doc)
                made += len(doc)
                if made >= target:
                    break
    return out


def token_blocks(
    docs: list[np.ndarray], shuffle: bool, seed: int, block_tokens: int, blocks: int
) -> Iterator[np.ndarray]:
    """`blocks` consecutive blocks of `block_tokens` ids from the documents streamed back to back,
    epoch after epoch: in their given order, or reshuffled (seeded) every epoch."""
    if not docs or not any(len(d) for d in docs):
        raise ProbeInputError("an arm has no training tokens")
    buffer = np.zeros(0, dtype=np.int64)
    epoch = 0
    made = 0
    while made < blocks:
        order = (
            np.random.default_rng([seed, epoch]).permutation(len(docs))
            if shuffle
            else np.arange(len(docs))
        )
        buffer = np.concatenate([buffer, *(docs[i] for i in order)])
        epoch += 1
        while len(buffer) >= block_tokens and made < blocks:
            yield buffer[:block_tokens]
            buffer = buffer[block_tokens:]
            made += 1
