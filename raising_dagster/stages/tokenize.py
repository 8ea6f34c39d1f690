"""Token ids for training frameworks: a Megatron-style `.bin`/`.idx` pair, written streaming.

`.bin`: every record's token ids (plus an end-of-document id when `append_eos`) back to back, in
position order, as uint16 when the vocabulary fits, else int32.
`.idx` (Megatron-LM `MMapIndexedDataset`, version 1), little-endian:
  magic b"MMIDIDX\\x00\\x00", u64 version = 1, u8 dtype code (8 = uint16, 4 = int32),
  u64 sequence count n, u64 document-index length n + 1, then int32 sizes[n] (tokens per record),
  int64 pointers[n] (byte offset of each record in .bin), int64 doc_idx[n + 1] = 0..n.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tokenizers import Tokenizer

MAGIC = b"MMIDIDX\x00\x00"
DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}
DEFAULT_TOKENIZER = "smollm2-135m-instruct.tokenizer.json.gz"
_BATCH = 2048


def load_tokenizer(path: Path | None = None) -> tuple[Tokenizer, str]:
    """A tokenizer and its name: a `tokenizer.json` file or a folder holding one, or by default the
    embedded teacher's (SmolLM2-135M-Instruct) tokenizer shipped with the package."""
    if path is None:
        data = (resources.files("raising_dagster") / "tokenizer" / DEFAULT_TOKENIZER).read_bytes()
        return Tokenizer.from_str(gzip.decompress(data).decode("utf-8")), "SmolLM2-135M-Instruct"
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no tokenizer.json at {path}")
    return Tokenizer.from_file(str(file)), str(path)


def eos_id(tokenizer: Tokenizer) -> int:
    for token in ("<|endoftext|>", "</s>", "<|im_end|>", "<eos>"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return token_id
    raise ValueError("the tokenizer has no end-of-document token; set append_eos: false")


@dataclass(frozen=True)
class TokenizedCorpus:
    bin_file: Path
    idx_file: Path
    sizes: np.ndarray
    dtype: np.dtype


def tokenize_parts(
    parts: list[Path], tokenizer: Tokenizer, out_prefix: Path, append_eos: bool = True
) -> TokenizedCorpus:
    """Tokenize the `text` column of ordered Parquet parts into `out_prefix`.bin/.idx."""
    dtype = np.dtype(np.uint16) if tokenizer.get_vocab_size() <= 65535 else np.dtype(np.int32)
    eos = [eos_id(tokenizer)] if append_eos else []
    sizes: list[np.ndarray] = []
    bin_file = out_prefix.with_suffix(".bin")
    with bin_file.open("wb") as out:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH, columns=["text"]):
                encodings = tokenizer.encode_batch(
                    batch.column("text").to_pylist(), add_special_tokens=False
                )
                arrays = [np.asarray(e.ids + eos, dtype=dtype) for e in encodings]
                sizes.append(np.fromiter(map(len, arrays), dtype=np.int32, count=len(arrays)))
                if arrays:
                    out.write(np.concatenate(arrays).tobytes())
    all_sizes = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int32)
    idx_file = out_prefix.with_suffix(".idx")
    _write_index(idx_file, all_sizes, dtype)
    return TokenizedCorpus(bin_file, idx_file, all_sizes, dtype)


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
    with prefix.with_suffix(".idx").open("rb") as handle:
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
    tokens = np.memmap(prefix.with_suffix(".bin"), dtype=dtype, mode="r")
    return [
        np.asarray(tokens[p // dtype.itemsize : p // dtype.itemsize + s])
        for p, s in zip(pointers, sizes, strict=True)
    ]
