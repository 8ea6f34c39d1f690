"""Train a small causal LM from scratch (a transformers Llama), score texts, sample completions.

Needs the `probe` extra (PyTorch and transformers); imported only when a probe runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from raising_dagster.probe.settings import ProbeSettings

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """The torch device; a clear error when CUDA is asked for and not there."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("probe.device is cuda but torch sees no CUDA device")
    return torch.device(name)


def build_model(settings: ProbeSettings, vocab_size: int, seed: int, eos: int) -> LlamaForCausalLM:
    """A Llama of the configured size with seeded initial weights (the same for every arm)."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_kv_heads,
        max_position_embeddings=settings.context_length,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


@dataclass
class TrainLog:
    """What a training run did."""

    steps: int
    tokens_seen: int
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)  # mean training loss per eval interval


def _lr_factor(step: int, steps: int, warmup: int, floor: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def train(
    model: LlamaForCausalLM,
    blocks: Iterator[np.ndarray],
    steps: int,
    settings: ProbeSettings,
    device: torch.device,
    evaluate: Callable[[int], None],
    eval_steps: set[int],
) -> TrainLog:
    """AdamW with warmup and cosine decay over `steps` batches; `evaluate(tokens_seen)` runs
    before the first step and after each step in `eval_steps`."""
    model.to(device=device, dtype=_DTYPES[settings.dtype]).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
        betas=(0.9, 0.95),
    )
    warmup = max(1, int(settings.warmup_share * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, steps, warmup, settings.min_lr_ratio)
    )
    shape = (settings.batch_size, settings.context_length)
    log = TrainLog(steps=steps, tokens_seen=steps * shape[0] * shape[1])
    start = time.perf_counter()
    evaluate(0)
    running: list[float] = []
    for step, block in enumerate(blocks, start=1):
        batch = torch.from_numpy(block.reshape(shape)).to(device)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        running.append(float(loss.detach()))
        if step in eval_steps:
            log.losses.append(float(np.mean(running)))
            running = []
            evaluate(step * shape[0] * shape[1])
            model.train()
    log.seconds = time.perf_counter() - start
    return log


@torch.no_grad()
def document_nll(
    model: LlamaForCausalLM,
    docs: list[np.ndarray],
    bos: int,
    context_length: int,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Per document: the summed negative log-likelihood (nats) of every token after a leading
    end-of-document id, and the number of tokens scored; shape (len(docs), 2). Long documents are
    cut into windows that overlap by one token, so each token is scored exactly once."""
    model.eval()
    windows: list[tuple[int, np.ndarray]] = []
    for index, doc in enumerate(docs):
        tokens = np.concatenate([[bos], doc])
        windows.extend(
            (index, tokens[start : start + context_length])
            for start in range(0, len(tokens) - 1, context_length - 1)
        )
    out = np.zeros((len(docs), 2), dtype=np.float64)
    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        width = max(len(w) for _, w in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (_, window) in enumerate(chunk):
            ids[row, : len(window)] = torch.from_numpy(window)
            mask[row, : len(window)] = 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        target = ids[:, 1:]
        nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1) * mask[:, 1:]
        sums = nll.sum(dim=1).cpu().numpy()
        counts = mask[:, 1:].sum(dim=1).cpu().numpy()
        for row, (index, _) in enumerate(chunk):
            out[index] += (sums[row], counts[row])
    return out


@torch.no_grad()
def sample(
    model: LlamaForCausalLM,
    prompts: list[np.ndarray],
    n: int,
    settings: ProbeSettings,
    eos: int,
    seed: int,
    device: torch.device,
    rows_per_call: int = 256,
) -> list[list[np.ndarray]]:
    """`n` sampled continuations of each prompt (student ids, end-of-document id excluded), each
    prompt after an end-of-document id; prompts are left-padded into batched generations, the
    sampling seeded once, so every arm gets the same random stream."""
    model.eval()
    room = settings.context_length - settings.max_new_tokens
    contexts = [np.concatenate([[eos], p])[-room:] for p in prompts]
    per_call = max(1, rows_per_call // n)
    torch.manual_seed(seed)
    continuations: list[list[np.ndarray]] = []
    for first in range(0, len(contexts), per_call):
        chunk = contexts[first : first + per_call]
        width = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), width), eos, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, context in enumerate(chunk):
            ids[row, width - len(context) :] = torch.from_numpy(context)
            mask[row, width - len(context) :] = 1
        output = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            do_sample=True,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=0,
            max_new_tokens=settings.max_new_tokens,
            num_return_sequences=n,
            eos_token_id=eos,
            pad_token_id=eos,
        )
        new = output[:, width:].cpu().numpy()
        for index in range(len(chunk)):
            samples = []
            for row in new[index * n : (index + 1) * n]:
                ends = np.flatnonzero(row == eos)
                samples.append(row[: ends[0]] if len(ends) else row)
            continuations.append(samples)
    return continuations
