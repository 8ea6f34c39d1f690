"""Token ids for training frameworks: a Megatron-style `.bin`/`.idx` pair, written streaming.

`.bin`: every record's token ids, each followed by the id of the configured `eos_token` (if any),
back to back in position order, as uint16 when the vocabulary fits, else int32.
`.idx` (Megatron-LM `MMapIndexedDataset`, version 1), little-endian:
  magic b"MMIDIDX\\x00\\x00", u64 version = 1, u8 dtype code (8 = uint16, 4 = int32),
  u64 sequence count n, u64 document-index length n + 1, then int32 sizes[n] (tokens per record),
  int64 pointers[n] (byte offset of each record in .bin), int64 doc_idx[n + 1] = 0..n.

A byte-level BPE vocabulary with GPT-2's split (SmolLM2's among them) is encoded by tiktoken, for
the same ids (about four times faster than the tokenizers library on the bench corpus):
`fast_bpe` accepts a vocabulary only when its merge order is tiktoken's rank order (needed, not
proof: tiktoken may merge a pair that is not a merge rule), and every batch's first records are
encoded by both and compared; on a difference the whole corpus is encoded again by tokenizers, and
the manifest says so.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tiktoken
from tokenizers import Tokenizer

MAGIC = b"MMIDIDX\x00\x00"
DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}
DEFAULT_TOKENIZER = "smollm2-135m-instruct.tokenizer.json.gz"
DEFAULT_TOKENIZER_NAME = "SmolLM2-135M-Instruct"
_BATCH = 2048
CROSS_CHECKED = 32  # records of each batch that tokenizers encodes too, compared id for id
# tokenizers' ByteLevel split (use_regex): GPT-2's pattern, as tiktoken runs it
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_THREADS = max(1, len(os.sched_getaffinity(0)))


def load_tokenizer(path: Path | None = None) -> tuple[Tokenizer, str]:
    """A tokenizer and its name: a `tokenizer.json` file or a folder holding one, or by default the
    embedded teacher's (SmolLM2-135M-Instruct) tokenizer shipped with the package.

    Special-token strings inside a text (`<|endoftext|>`, `<|im_start|>`, ...) are encoded as the
    plain text they are (`encode_special_tokens`), never as control ids: `add_special_tokens=False`
    alone only skips the post-processor's BOS/EOS and still matches them."""
    if path is None:
        data = (resources.files("raising_dagster") / "tokenizer" / DEFAULT_TOKENIZER).read_bytes()
        tokenizer = Tokenizer.from_str(gzip.decompress(data).decode("utf-8"))
        name = DEFAULT_TOKENIZER_NAME
    else:
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"no tokenizer.json at {path}")
        tokenizer, name = Tokenizer.from_file(str(file)), str(path)
    tokenizer.encode_special_tokens = True
    return tokenizer, name


def export_tokenizer(path: Path | None, eos_token: str | None, out_dir: Path) -> Path:
    """Copy the tokenizer into `out_dir` as a Hugging Face tokenizer folder (`tokenizer.json`,
    and `tokenizer_config.json` naming the end-of-document token), so the corpus carries the exact
    tokenizer of its ids (Megatron: `--tokenizer-type HuggingFaceTokenizer --tokenizer-model`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = path if path is not None and path.is_dir() else None
    if path is None:
        data = (resources.files("raising_dagster") / "tokenizer" / DEFAULT_TOKENIZER).read_bytes()
        (out_dir / "tokenizer.json").write_bytes(gzip.decompress(data))
    else:
        source = path / "tokenizer.json" if folder else path
        (out_dir / "tokenizer.json").write_bytes(source.read_bytes())
    config: dict[str, object] = {"tokenizer_class": "PreTrainedTokenizerFast"}
    if folder is not None and (folder / "tokenizer_config.json").is_file():
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    if eos_token is not None:
        config["eos_token"] = eos_token
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return out_dir


def special_tokens(tokenizer: Tokenizer) -> dict[str, int]:
    """The tokenizer's special (control) tokens, by content."""
    return {t.content: i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}


@cache
def _special_tokens_of(path: Path | None, stamp: tuple[int, int] | None) -> dict[str, int]:
    return special_tokens(load_tokenizer(path)[0])


def check_eos_token(path: Path | None, eos_token: str) -> int:
    """The id of `eos_token` in the tokenizer at `path` (None: the embedded one); a ValueError
    when it is not one of its special tokens (so no document text can produce it)."""
    file = None if path is None else (path / "tokenizer.json" if path.is_dir() else path)
    if file is not None and not file.is_file():
        raise ValueError(f"no tokenizer.json at {path}")
    stat = file.stat() if file is not None else None
    specials = _special_tokens_of(path, (stat.st_mtime_ns, stat.st_size) if stat else None)
    if eos_token not in specials:
        listed = ", ".join(list(specials)[:12]) + (", ..." if len(specials) > 12 else "")
        raise ValueError(
            f"eos_token {eos_token!r} is not a special token of the tokenizer "
            f"{path or DEFAULT_TOKENIZER_NAME}; its special tokens: {listed or 'none'}. Set "
            "tokenizer.eos_token to its end-of-document token, or null to append none"
        )
    return specials[eos_token]


@dataclass(frozen=True)
class TokenizedCorpus:
    bin_file: Path
    idx_file: Path
    sizes: np.ndarray
    dtype: np.dtype


def tokenize_dtype(tokenizer: Tokenizer) -> np.dtype:
    """uint16 when every id fits, else int32."""
    return np.dtype(np.uint16) if tokenizer.get_vocab_size() <= 65535 else np.dtype(np.int32)


@cache
def _byte_of_char() -> dict[str, int]:
    """Byte-level BPE's alphabet (GPT-2's bytes_to_unicode), from character to byte."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    chars = printable + [0x100 + i for i in range(len(others))]
    return {chr(c): b for b, c in zip(printable + others, chars, strict=True)}


def _chars_with_byte(missing: set[int]) -> str | None:
    """A regex class (RE2 syntax) of the characters whose UTF-8 form holds one of `missing`
    (bytes the vocabulary lacks, none of them a continuation byte: tokenizers drops them,
    tiktoken cannot encode them); None when no character has one."""
    ranges = []
    for b in sorted(missing):
        if b < 0x80:
            ranges.append((b, b))
        elif 0xC2 <= b < 0xE0:
            ranges.append(((b & 0x1F) << 6, ((b & 0x1F) << 6) + 0x3F))
        elif 0xE0 <= b < 0xF0:
            ranges.append(((b & 0x0F) << 12, ((b & 0x0F) << 12) + 0xFFF))
        elif 0xF0 <= b < 0xF5:
            ranges.append(((b & 0x07) << 18, ((b & 0x07) << 18) + 0x3FFFF))
        # 0xC0, 0xC1, 0xF5..0xFF never occur in UTF-8
    return (
        "[" + "".join(f"\\x{{{lo:x}}}-\\x{{{hi:x}}}" for lo, hi in ranges) + "]" if ranges else None
    )


@dataclass(frozen=True)
class FastBpe:
    """tiktoken over a byte-level BPE vocabulary: the same ids as tokenizers (`fast_bpe`).
    Texts matching `routed` (a character with a byte the vocabulary lacks; RE2 syntax, as
    pyarrow runs it) go to tokenizers."""

    encoding: tiktoken.Encoding
    routed: str | None


def fast_bpe(tokenizer: Tokenizer) -> FastBpe | None:
    """tiktoken's encoder of a tokenizer, or None where its ids could differ from tokenizers'.

    Accepted: no normalizer; the ByteLevel pre-tokenizer with GPT-2's split and no prefix
    space; a BPE model without dropout, affixes, byte fallback or ignore_merges; only special
    added tokens (read as plain text here); merges whose results are distinct tokens with ids
    rising in merge order (needed for tiktoken's lowest-rank pair to be tokenizers' next merge;
    not proof, hence the cross-check in `tokenize_parts`). Only the single bytes and the merge
    results are ranked: tiktoken never forms another token."""
    spec = json.loads(tokenizer.to_str())
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    if (
        spec.get("normalizer") is not None
        or pre.get("type") != "ByteLevel"
        or pre.get("add_prefix_space")
        or not pre.get("use_regex", True)
        or model.get("type") != "BPE"
        or model.get("dropout") is not None
        or model.get("continuing_subword_prefix")
        or model.get("end_of_word_suffix")
        or model.get("byte_fallback")
        or model.get("ignore_merges")
        or any(not t["special"] for t in spec.get("added_tokens", []))
    ):
        return None
    vocab: dict[str, int] = model["vocab"]
    byte_of = _byte_of_char()
    ranks = {bytes([byte_of[t]]): i for t, i in vocab.items() if len(t) == 1 and t in byte_of}
    last = max(ranks.values(), default=-1)
    for merge in model["merges"]:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        merged = left + right
        rank = vocab.get(merged)
        if rank is None or rank <= last or not all(c in byte_of for c in merged):
            return None
        ranks[bytes(byte_of[c] for c in merged)] = last = rank
    missing = set(range(256)) - {k[0] for k in ranks if len(k) == 1}
    if any(0x80 <= b < 0xC0 for b in missing):  # a continuation byte: too many texts to route
        return None
    encoding = tiktoken.Encoding(
        "raising-fast-bpe", pat_str=GPT2_SPLIT, mergeable_ranks=ranks, special_tokens={}
    )
    return FastBpe(encoding, _chars_with_byte(missing))


class FastBpeMismatch(RuntimeError):
    """tiktoken and tokenizers gave a record different ids (`fast_bpe` accepted a vocabulary it
    should not have): the corpus is encoded again with tokenizers alone."""


def _encode(tokenizer: Tokenizer, fast: FastBpe | None, column: pa.Array) -> list[list[int]]:
    """Token ids of each text, by tiktoken where `fast` allows; the first CROSS_CHECKED texts
    tiktoken encoded are encoded by tokenizers too and must match (else FastBpeMismatch)."""
    texts = column.to_pylist()
    if fast is None:
        return _by_tokenizers(tokenizer, texts)
    routed: set[int] = set()
    if fast.routed:
        routed = set(np.flatnonzero(pc.match_substring_regex(column, fast.routed)).tolist())
    plain = [t for i, t in enumerate(texts) if i not in routed]
    ids = fast.encoding.encode_ordinary_batch(plain, num_threads=_THREADS)
    reference = _by_tokenizers(tokenizer, plain[:CROSS_CHECKED])
    for text, mine, theirs in zip(plain, ids, reference, strict=False):
        if mine != theirs:
            raise FastBpeMismatch(f"tiktoken and tokenizers differ on {text[:80]!r}")
    if not routed:
        return ids
    slow = iter(_by_tokenizers(tokenizer, [texts[i] for i in sorted(routed)]))
    quick = iter(ids)
    return [next(slow) if i in routed else next(quick) for i in range(len(texts))]


def _by_tokenizers(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text by the tokenizers library (its threads, without offsets)."""
    return [e.ids for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]


def tokenize_parts(
    parts: list[Path],
    tokenizer: Tokenizer,
    out_prefix: Path,
    eos_token: str | None,
    fast: FastBpe | None = None,
) -> TokenizedCorpus:
    """Tokenize the `text` column of ordered Parquet parts into `out_prefix`.bin/.idx, each
    record followed by the id of `eos_token` (None: nothing). Texts are plain text: a control id
    inside a record is an error, so the only end-of-document ids are the separators. `fast`
    (`fast_bpe(tokenizer)`) encodes with tiktoken, cross-checked (FastBpeMismatch).

    Batches of records are encoded at once (threads, without offsets) and written as one array
    each: the file grows batch by batch, never held whole."""
    dtype = tokenize_dtype(tokenizer)
    tokenizer.encode_special_tokens = True
    controls = list(special_tokens(tokenizer).values())
    is_control = np.zeros(max([tokenizer.get_vocab_size(True), *[c + 1 for c in controls]]), bool)
    is_control[controls] = True
    eos_id: int | None = None
    if eos_token is not None:
        eos_id = tokenizer.token_to_id(eos_token)
        if eos_id is None or not is_control[eos_id]:
            raise ValueError(f"eos_token {eos_token!r} is not a special token of the tokenizer")
    sizes: list[np.ndarray] = []
    bin_file = _with(out_prefix, ".bin")
    with bin_file.open("wb") as out:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH, columns=["text"]):
                ids = _encode(tokenizer, fast, batch.column("text"))
                lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
                flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=lengths.sum())
                if is_control[flat].any():
                    raise ValueError(
                        "a document's text encoded to a control token id although special "
                        "tokens are read as plain text; this tokenizer's vocabulary can produce "
                        "its own special tokens"
                    )
                if eos_id is not None:
                    lengths += 1
                    records = np.full(flat.size + len(ids), eos_id, dtype=dtype)
                    text_at = np.ones(records.size, dtype=bool)
                    text_at[np.cumsum(lengths) - 1] = False  # each record's last id: the eos
                    records[text_at] = flat
                else:
                    records = flat.astype(dtype)
                sizes.append(lengths.astype(np.int32))
                out.write(records.tobytes())
    all_sizes = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int32)
    idx_file = _with(out_prefix, ".idx")
    _write_index(idx_file, all_sizes, dtype)
    return TokenizedCorpus(bin_file, idx_file, all_sizes, dtype)


def _with(prefix: Path, suffix: str) -> Path:
    """`prefix` + suffix, as Megatron names its files (a dot in the prefix is kept)."""
    return prefix.with_name(prefix.name + suffix)


def _write_index(path: Path, sizes: np.ndarray, dtype: np.dtype) -> None:
    n = len(sizes)
    pointers = np.zeros(n, dtype=np.int64)
    if n:
        pointers[1:] = np.cumsum(sizes[:-1], dtype=np.int64) * dtype.itemsize
    with path.open("wb") as out:
        out.write(MAGIC)
        out.write(struct.pack("<Q", 1))
        out.write(struct.pack("<B", DTYPE_CODES[dtype]))
        out.write(struct.pack("<Q", n))
        out.write(struct.pack("<Q", n + 1))
        out.write(sizes.astype(np.int32).tobytes())
        out.write(pointers.tobytes())
        out.write(np.arange(n + 1, dtype=np.int64).tobytes())


def read_tokenized(prefix: Path) -> list[np.ndarray]:
    """Every record's token ids from a `.bin`/`.idx` pair (reads the index as Megatron does)."""
    with _with(prefix, ".idx").open("rb") as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{prefix}.idx is not a Megatron index")
        (version,) = struct.unpack("<Q", handle.read(8))
        (code,) = struct.unpack("<B", handle.read(1))
        (n,) = struct.unpack("<Q", handle.read(8))
        struct.unpack("<Q", handle.read(8))
        sizes = np.frombuffer(handle.read(4 * n), dtype=np.int32)
        pointers = np.frombuffer(handle.read(8 * n), dtype=np.int64)
    if version != 1:
        raise ValueError(f"unsupported index version {version}")
    dtype = next(d for d, c in DTYPE_CODES.items() if c == code)
    tokens = np.memmap(_with(prefix, ".bin"), dtype=dtype, mode="r")
    return [
        np.asarray(tokens[p // dtype.itemsize : p // dtype.itemsize + s])
        for p, s in zip(pointers, sizes, strict=True)
    ]
