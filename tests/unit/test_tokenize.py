"""Token files: special-token strings in documents are plain text; the end-of-document token is a
setting (datatrove's `eos_token`), validated against the tokenizer when the settings load;
tiktoken's encoding of a byte-level BPE vocabulary gives tokenizers' ids, byte for byte."""

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from raising_dagster.config import load_settings
from raising_dagster.stages.tokenize import (
    FastBpe,
    FastBpeMismatch,
    fast_bpe,
    load_tokenizer,
    read_tokenized,
    tokenize_parts,
)
from tests.conftest import raw_byte_encoder
from tests.llama3_tokenizer import END, build_llama3_style_tokenizer

HOSTILE_TEXTS = [
    "A plain first record.",
    "The chat format wraps turns in <|im_start|>user\nhi<|im_end|> markers.",
    "Documents end with <|endoftext|> in GPT-2's vocabulary.",
    "<|endoftext|><|endoftext|>",
    "Llama 3 uses <|begin_of_text|> and <|end_of_text|> and <|eot_id|>.",
]


REAL_CORPUS = Path(__file__).resolve().parent.parent / "data" / "real_corpus"
# What a corpus holds beyond plain prose: scripts, emoji sequences, combining marks, runs of
# whitespace, contractions, a long unbroken token, and characters whose UTF-8 bytes SmolLM2's
# vocabulary lacks (control bytes 0x04 and 0x1d, the plane-4 and plane-11 lead bytes 0xf1, 0xf2):
# tokenizers drops such bytes, so those texts are left to it.
EDGE_TEXTS = [
    "control \x04 bytes \x1d inside",
    "unassigned planes \U00040001 and \U000b0000 next to text",
    "emoji 👩‍👩‍👧 and flags 🇩🇪🇯🇵, CJK 中文字符, Arabic العربية, Hindi हिन्दी, Greek ἀρετή",
    "combining e\u0301 and n\u0303; NBSP\u00a0here; zero width\u200bjoiner",
    "   leading spaces\n\n\ttabs\r\nCRLF  and trailing   ",
    "don't we'll THEY'RE I'M 'S 'll 1234567 3.14159 1e-9",
    "x" * 20_000,
    "<|endoftext|> is text here, as is <|im_start|>",
]


def _real_texts() -> list[str]:
    texts = []
    for shard in sorted(REAL_CORPUS.glob("*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as lines:
            texts += [json.loads(line)["text"] for line in lines]
    return texts


@pytest.fixture(scope="module")
def llama3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_llama3_style_tokenizer(tmp_path_factory.mktemp("llama3"))


def _part(tmp_path: Path, texts: list[str]) -> Path:
    path = tmp_path / "part-00000.parquet"
    pl.DataFrame({"text": texts}).write_parquet(path)
    return path


def _special_ids(tokenizer) -> set[int]:
    return {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}


@pytest.mark.parametrize("which", ["smollm2", "llama3"])
def test_special_token_strings_in_documents_are_plain_text(
    tmp_path: Path, llama3_dir: Path, which: str
) -> None:
    path, eos_token = (None, "<|endoftext|>") if which == "smollm2" else (llama3_dir, END)
    tokenizer, _ = load_tokenizer(path)
    corpus = tokenize_parts([_part(tmp_path, HOSTILE_TEXTS)], tokenizer, tmp_path / "t", eos_token)
    eos = tokenizer.token_to_id(eos_token)
    sequences = read_tokenized(tmp_path / "t")
    assert len(sequences) == len(HOSTILE_TEXTS)
    flat = np.concatenate(sequences)
    separators = np.cumsum(corpus.sizes) - 1
    # the only end-of-document ids are the separators, and no control id is inside a document
    assert np.flatnonzero(flat == eos).tolist() == separators.tolist()
    for ids, text in zip(sequences, HOSTILE_TEXTS, strict=True):
        assert not set(ids[:-1].tolist()) & _special_ids(tokenizer)
        assert tokenizer.decode(ids[:-1].tolist(), skip_special_tokens=False) == text


def test_llama3_style_tokenizer_uses_its_configured_eos(tmp_path: Path, llama3_dir: Path) -> None:
    settings = load_settings(tokenizer={"path": llama3_dir, "eos_token": END})
    tokenizer, _ = load_tokenizer(settings.tokenizer.path)
    corpus = tokenize_parts([_part(tmp_path, ["one", "two words"])], tokenizer, tmp_path / "t", END)
    assert corpus.dtype == np.int32  # 128,010 ids do not fit uint16
    sequences = read_tokenized(tmp_path / "t")
    assert [s[-1] for s in sequences] == [128001, 128001]
    assert 128000 not in np.concatenate(sequences)  # no <|begin_of_text|> from the template


def test_no_eos_token_appends_no_separator(tmp_path: Path) -> None:
    tokenizer, _ = load_tokenizer(None)
    corpus = tokenize_parts([_part(tmp_path, ["one", "two"])], tokenizer, tmp_path / "t", None)
    sequences = read_tokenized(tmp_path / "t")
    assert [tokenizer.decode(s.tolist()) for s in sequences] == ["one", "two"]
    assert corpus.sizes.tolist() == [len(s) for s in sequences]


def test_eos_token_missing_from_the_tokenizer_is_refused_at_load(llama3_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"'<\|endoftext\|>' is not a special token") as info:
        load_settings(tokenizer={"path": llama3_dir})  # the default eos_token: <|endoftext|>
    assert END in str(info.value)  # the tokenizer's own special tokens are suggested


def test_eos_token_must_be_a_special_token(llama3_dir: Path) -> None:
    with pytest.raises(ValueError, match="is not a special token"):
        load_settings(tokenizer={"eos_token": "the"})  # a word of SmolLM2's vocabulary


def test_missing_tokenizer_path_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no tokenizer\.json"):
        load_settings(tokenizer={"path": tmp_path / "nowhere"})


def test_disabled_tokenizer_is_not_loaded(tmp_path: Path) -> None:
    settings = load_settings(tokenizer={"enabled": False, "path": tmp_path / "nowhere"})
    assert settings.tokenizer.enabled is False


def test_a_vocabulary_that_encodes_text_to_a_control_id_is_refused(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    # a word-level vocabulary whose plain word "<eos>" is also its special token
    tokenizer = Tokenizer(models.WordLevel({"hello": 0, "<eos>": 1, "[UNK]": 2}, "[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(["<eos>"])
    fine = tokenize_parts(
        [_part(tmp_path, ["hello hello", "hello"])], tokenizer, tmp_path / "a", "<eos>"
    )
    assert [s.tolist() for s in read_tokenized(tmp_path / "a")] == [[0, 0, 1], [0, 1]]
    assert fine.sizes.tolist() == [3, 2]
    with pytest.raises(ValueError, match="control token id"):
        tokenize_parts([_part(tmp_path, ["hello <eos> hello"])], tokenizer, tmp_path / "b", None)


def test_tiktoken_writes_the_token_files_tokenizers_writes_on_real_text(tmp_path: Path) -> None:
    tokenizer, _ = load_tokenizer(None)
    fast = fast_bpe(tokenizer)
    assert fast is not None and fast.routed is not None
    texts = _real_texts() + EDGE_TEXTS + HOSTILE_TEXTS
    assert len(texts) > 2000
    # only the two texts with bytes the vocabulary lacks are left to tokenizers
    routed = pc.match_substring_regex(pa.array(texts), fast.routed).to_pylist()
    assert [t for t, r in zip(texts, routed, strict=True) if r] == EDGE_TEXTS[:2]
    part = _part(tmp_path, texts)
    tokenize_parts([part], tokenizer, tmp_path / "slow", "<|endoftext|>")
    tokenize_parts([part], tokenizer, tmp_path / "fast", "<|endoftext|>", fast)
    for suffix in (".bin", ".idx"):
        assert (tmp_path / f"fast{suffix}").read_bytes() == (
            tmp_path / f"slow{suffix}"
        ).read_bytes()
    decoded = [tokenizer.decode(s[:-1].tolist()) for s in read_tokenized(tmp_path / "fast")]
    assert decoded[-len(HOSTILE_TEXTS) :] == HOSTILE_TEXTS


def test_fast_bpe_refuses_vocabularies_whose_ids_it_could_not_match(llama3_dir: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    assert fast_bpe(load_tokenizer(llama3_dir)[0]) is None  # its own split regex

    def byte_level(merged_ids: dict[str, int]) -> Tokenizer:
        vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
        merges = [("a", "b"), ("ab", "c")]
        tokenizer = Tokenizer(models.BPE(vocab={**vocab, **merged_ids}, merges=merges))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        return tokenizer

    assert fast_bpe(byte_level({"ab": 256, "abc": 257})) is not None

    def without_byte(char: str) -> FastBpe | None:  # char: the byte's letter in the alphabet
        spec = json.loads(byte_level({"ab": 256, "abc": 257}).to_str())
        del spec["model"]["vocab"][char]
        return fast_bpe(Tokenizer.from_str(json.dumps(spec)))

    # without 0xc0 ("À"), which UTF-8 never uses, nothing is routed; without 0x7f ("ġ") the
    # texts holding that character are; without the continuation byte 0x80 ("Ģ"): refused
    assert (without_c0 := without_byte("À")) is not None and without_c0.routed is None
    assert (without_7f := without_byte("ġ")) is not None
    assert without_7f.routed == "[\\x{7f}-\\x{7f}]"
    assert without_byte("Ģ") is None
    # "abc" ranked before "ab", its own first half: tiktoken would merge in another order
    assert fast_bpe(byte_level({"ab": 257, "abc": 256})) is None
    with_prefix = byte_level({"ab": 256, "abc": 257})
    with_prefix.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    assert fast_bpe(with_prefix) is None


def test_a_tiktoken_encoder_that_disagrees_is_caught(tmp_path: Path) -> None:
    tokenizer, _ = load_tokenizer(None)
    with pytest.raises(FastBpeMismatch, match=r"differ on 'A plain first record\.'"):
        tokenize_parts(
            [_part(tmp_path, HOSTILE_TEXTS)], tokenizer, tmp_path / "t", None, raw_byte_encoder()
        )
