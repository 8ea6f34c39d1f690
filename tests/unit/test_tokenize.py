"""Token files: special-token strings in documents are plain text; the end-of-document token is a
setting (datatrove's `eos_token`), validated against the tokenizer when the settings load."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from raising_dagster.config import load_settings
from raising_dagster.stages.tokenize import load_tokenizer, read_tokenized, tokenize_parts
from tests.llama3_tokenizer import END, build_llama3_style_tokenizer

HOSTILE_TEXTS = [
    "A plain first record.",
    "The chat format wraps turns in <|im_start|>user\nhi<|im_end|> markers.",
    "Documents end with <|endoftext|> in GPT-2's vocabulary.",
    "<|endoftext|><|endoftext|>",
    "Llama 3 uses <|begin_of_text|> and <|end_of_text|> and <|eot_id|>.",
]


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
