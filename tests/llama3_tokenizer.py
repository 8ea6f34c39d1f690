"""A Llama-3 style tokenizer built locally with the `tokenizers` library (no hub download).

Same shape as Meta's Llama-3 `tokenizer.json`: a regex split then byte-level BPE, 128,000 regular
ids, then the special tokens at their Llama-3 ids (`<|begin_of_text|>` 128000, `<|end_of_text|>`
128001, reserved tokens, `<|eot_id|>` 128009), and a post-processor that prepends
`<|begin_of_text|>`. It has no `<|endoftext|>`, `</s>`, `<|im_end|>` or `<eos>`. The vocabulary
has no merges: every byte is its own token, enough to test ids, separators and decoding.
"""

from __future__ import annotations

import json
from pathlib import Path

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BEGIN, END, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
N_REGULAR = 128_000


def build_llama3_style_tokenizer(folder: Path) -> Path:
    """Write `tokenizer.json` and `tokenizer_config.json` into `folder`; returns the folder."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab.update({f"<unused_{i}>": i for i in range(len(vocab), N_REGULAR)})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    specials = [BEGIN, END] + [f"<|reserved_special_token_{i}|>" for i in range(7)] + [EOT]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tokenizer.post_processor = TemplateProcessing(
        single=f"{BEGIN} $A", pair=f"{BEGIN} $A {BEGIN} $B", special_tokens=[(BEGIN, 128000)]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"bos_token": BEGIN, "eos_token": END, "tokenizer_class": "PreTrainedTokenizerFast"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert tokenizer.token_to_id(END) == 128001 and tokenizer.token_to_id(EOT) == 128009
    return folder
