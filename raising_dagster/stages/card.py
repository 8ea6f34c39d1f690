"""The dataset card (`training_ready/README.md`): a Hugging Face Hub card whose YAML `configs`
make `datasets.load_dataset(folder)` read the corpus in curriculum order, whole or by phase."""

from __future__ import annotations

import math
from typing import Any

import yaml

from raising_dagster.config import DatasetCardSettings

CARD_FILE = "README.md"
_SIZE_CATEGORIES = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M")


def size_category(records: int) -> str:
    """The Hub's `size_categories` bucket of a record count."""
    index = 0 if records < 1000 else int(math.log10(records)) - 2
    return _SIZE_CATEGORIES[index] if index < len(_SIZE_CATEGORIES) else "n>100M"


def card_header(manifest: dict[str, Any], settings: DatasetCardSettings) -> dict[str, Any]:
    """The YAML metadata: license, language, and one config per phase after the whole corpus."""
    configs: list[dict[str, Any]] = [
        {
            "config_name": "default",
            "default": True,
            "data_files": [{"split": "train", "path": "data/train-*.parquet"}],
        }
    ]
    configs += [
        {"config_name": p["hf_config"], "data_files": [{"split": "train", "path": p["files"]}]}
        for p in manifest["phases"]
    ]
    return {
        "pretty_name": settings.pretty_name,
        "license": settings.license,
        "language": settings.language,
        "task_categories": ["text-generation"],
        "tags": ["curriculum-learning", "model-raising", "pretraining", "raising-dagster"],
        "size_categories": [size_category(manifest["records"])],
        "configs": configs,
    }


def render(manifest: dict[str, Any], settings: DatasetCardSettings) -> str:
    """The card's text: YAML header, then what the corpus is and how to train on it in order."""
    header = yaml.safe_dump(card_header(manifest, settings), sort_keys=False, width=1000)
    tokenized = manifest["tokenized"]
    tokens = tokenized.get("tokens")
    lines = [
        f"---\n{header}---",
        f"# {settings.pretty_name}",
        "",
        'A *model-raising* pre-training corpus (Aydin et al., 2025, "From Model Training to Model '
        'Raising"): each document rewritten as the lived, first-person experience of one '
        'persistent "I", tied to a codex of values, with dialogues, in a curriculum from simple '
        f"to complex. Made by {manifest['created_by']}.",
        "",
        "## Do not shuffle",
        "",
        manifest["order"],
        "",
        "- Hugging Face `datasets`: read it with `streaming=True` (an `IterableDataset` keeps the "
        "file order) or, map-style, train with `TrainingArguments(train_sampling_strategy="
        '"sequential")`; never call `.shuffle()` across phases. More than one dataloader worker '
        "or data-parallel rank reads different files at once: train phase by phase (the "
        "`phase-*` configs) to keep the order at least between phases.",
        "- Megatron-LM / NeMo: one `--data-path` prefix per phase, one training run per phase, "
        "each starting from the previous phase's checkpoint (see the project's README, "
        '"Training on the corpus").',
        "",
        f"Records: {manifest['records']}; "
        + (
            f"tokens: {tokens} ({tokenized['tokenizer']} tokenizer, end-of-document token "
            f"{tokenized['eos_token']!r})."
            if tokens is not None
            else f"about {manifest['approx_tokens']} tokens (not tokenized)."
        ),
        "",
        "## Phases, in training order",
        "",
        "| phase (config) | stages | records | tokens | positions | Megatron prefix |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{p['hf_config']}` | {', '.join(p['stages'])} | {p['records']} | "
        f"{p.get('tokens', '')} | {p['first_position']}..{p['last_position']} | "
        f"{'`' + p['megatron_prefix'] + '`' if 'megatron_prefix' in p else ''} |"
        for p in manifest["phases"]
    ]
    lines += [
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        "# the whole curriculum, in order",
        'corpus = load_dataset("path/to/training_ready", split="train", streaming=True)',
    ]
    if manifest["phases"]:
        first = manifest["phases"][0]["hf_config"]
        lines += [
            "# one phase",
            f'phase = load_dataset("path/to/training_ready", "{first}", split="train", '
            "streaming=True)",
        ]
    lines += [
        "# the Parquet files alone (data/train-NNNNN-of-MMMMM.parquet, in order)",
        'corpus = load_dataset("parquet", data_dir="path/to/training_ready", split="train", '
        "streaming=True)",
        "```",
        "",
        "## Stages",
        "",
        "| stage | records | tokens | positions | difficulty p10 / p50 / p90 |",
        "|---|---|---|---|---|",
    ]
    for s in manifest["stages"]:
        q = s["difficulty_quantiles"]
        lines.append(
            f"| {s['name']} | {s['records']} | {s.get('tokens', s['approx_tokens'])} | "
            f"{s['first_position']}..{s['last_position']} | "
            + (f"{q['p10']} / {q['p50']} / {q['p90']} |" if q else "|")
        )
    lines += [
        "",
        "## Teachers and prompts",
        "",
        "| teacher | model | prompt | prompt sha256 | records |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {p['teacher_backend']} | {p['teacher_model']} | {p['prompt_id']} | "
        f"`{p['prompt_sha'][:16]}` | {p['records']} |"
        for p in manifest["prompts"]
    ]
    excluded = manifest["exclusions_by_reason"]
    reasons = ", ".join(f"{k}: {v}" for k, v in excluded.items()) or "none"
    lines += [
        "",
        "## Provenance",
        "",
        f"- Input shards: {len(manifest['input_shards'])}; records quarantined at ingest: "
        f"{sum(s.get('quarantined', 0) for s in manifest['input_shards'])}; excluded from the "
        f"curriculum: {sum(excluded.values())} ({reasons}).",
        f"- Settings sha256 `{manifest['config_sha']}`, codex `{manifest['codex_sha']}`, identity "
        f"card `{manifest['identity_sha']}`.",
        "- Every record carries its lineage: `source_doc_id`, `shard`, `input_sha`, "
        "`teacher_backend`, `teacher_model`, `prompt_id`, `prompt_sha`, `sampling`, `seed`, "
        "`attempts`, `fallback_reason`. `manifest.json` holds every count above and more.",
    ]
    if manifest.get("lineage"):
        lines.append(
            f"- `{manifest['lineage']}`: each stage of each source document (raw text and where "
            "it came from, scores, every rewrite with its model, prompt, seed, attempts, "
            "fallback reason, cache hit and Dagster run); `raising trace ID` follows one record."
        )
    lines += ["", *left_out_section(manifest), ""]
    return "\n".join(lines)


def left_out_section(manifest: dict[str, Any]) -> list[str]:
    """The card's account of what this publication leaves out, and why: registered shards not
    in it, and withdrawn documents."""
    left_out = manifest.get("left_out_shards", [])
    withdrawals = manifest.get("withdrawals", [])
    lines = ["## Left out", ""]
    if not left_out and not withdrawals:
        return [*lines, "Nothing: every registered shard is in this publication."]
    if left_out:
        lines += [
            f"{len(left_out)} registered shard(s) are not in this publication:",
            "",
            "| shard | reason | detail |",
            "|---|---|---|",
        ]
        lines += [
            f"| {s['shard']} | {s['reason']} | {str(s.get('detail') or '').replace('|', '/')} |"
            for s in left_out
        ]
        lines.append("")
    if withdrawals:
        dropped = sum(w.get("records_dropped", 0) for w in withdrawals)
        lines += [
            f"{len(withdrawals)} document(s) withdrawn ({dropped} records dropped):",
            "",
            "| shard | document | reason | records dropped |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {w['shard']} | {w['doc_id']} | {w['reason']} | {w.get('records_dropped', 0)} |"
            for w in withdrawals
        ]
    return lines
