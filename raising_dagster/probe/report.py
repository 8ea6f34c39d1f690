"""The probe's results for people: a text table, a markdown table and two plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from raising_dagster.probe.data import ARMS

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("first_person_share", "first person", "{:.2f}"),
    ("other_narrator_share", "other narrator", "{:.2f}"),
    ("value_share", "value way", "{:.2f}"),
    ("heldout_perplexity", "held-out ppl", "{:.1f}"),
    ("heldout_perplexity_ratio_to_raw", "ppl / raw", "{:.2f}"),
)


def _cell(entry: dict[str, Any], key: str, fmt: str) -> str:
    value, (low, high) = entry[key], entry[f"{key}_ci"]
    if any(v is None or math.isnan(v) for v in (value, low, high)):
        return "n/a"
    return f"{fmt.format(value)} [{fmt.format(low)}, {fmt.format(high)}]"


def rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per arm: the arm, then each figure with its interval."""
    return [
        [arm, *(_cell(report["arms"][arm], key, fmt) for key, _, fmt in COLUMNS)] for arm in ARMS
    ]


def text_table(report: dict[str, Any]) -> str:
    """The figures as an aligned plain-text table, with the order probe below it."""
    header = ["arm", *(title for _, title, _ in COLUMNS)]
    body = rows(report)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *body]]
    order = report["order"]
    lines.append("")
    lines.append("held-out loss per curriculum stage at the end of training (nats per token):")
    for stage in order["stages"]:
        cells = [f"{arm} {order['final_loss'][arm][stage]['loss']:.3f}" for arm in ARMS]
        diff = order["ordered_minus_shuffled"][stage]
        lines.append(
            f"  {stage:<12} " + "  ".join(cells) + f"  ordered-shuffled {diff['final']:+.3f}"
            f" (mean over training {diff['mean_over_training']:+.3f})"
        )
    confidence = report["settings"]["confidence"]
    lines.append(
        f"[{confidence:.0%} bootstrap intervals: shares over prompts, perplexity over held-out "
        f"documents; values judged by {report['judge']['judge']}]"
    )
    return "\n".join(lines)


def markdown_table(report: dict[str, Any]) -> str:
    """The figures as a markdown table (asset metadata, README)."""
    header = ["arm", *(title for _, title, _ in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(report)]
    return "\n".join(lines)


def order_markdown(report: dict[str, Any]) -> str:
    """The order probe: final held-out loss per stage and arm, ordered minus shuffled."""
    order = report["order"]
    lines = [
        "| stage | held-out records | " + " | ".join(ARMS) + " | ordered - shuffled |",
        "|---|---|" + "---|" * len(ARMS) + "---|",
    ]
    for stage in order["stages"]:
        losses = [f"{order['final_loss'][arm][stage]['loss']:.3f}" for arm in ARMS]
        lines.append(
            f"| {stage} | {order['heldout_records'][stage]} | "
            + " | ".join(losses)
            + f" | {order['ordered_minus_shuffled'][stage]['final']:+.3f} |"
        )
    return "\n".join(lines)


def write_plots(report: dict[str, Any], folder: Path) -> list[Path]:
    """`probe_figures.png` (each figure per arm with its interval) and `stage_loss.png` (each
    stage's held-out loss along training, per arm)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        _figures(report, folder / "probe_figures.png"),
        _stage_loss(report, folder / "stage_loss.png"),
    ]


def _figures(report: dict[str, Any], path: Path) -> Path:
    fig = Figure(figsize=(12, 3.2))
    axes = fig.subplots(1, 4)
    for ax, (key, title, _) in zip(axes, COLUMNS[:4], strict=True):
        values = [report["arms"][a][key] for a in ARMS]
        lows = [v - report["arms"][a][f"{key}_ci"][0] for a, v in zip(ARMS, values, strict=True)]
        highs = [report["arms"][a][f"{key}_ci"][1] - v for a, v in zip(ARMS, values, strict=True)]
        ax.bar(
            range(len(ARMS)), values, yerr=[lows, highs], capsize=4, color=["#888", "#2a7", "#7a2"]
        )
        ax.set_xticks(range(len(ARMS)), ["raw", "ordered", "shuffled"])
        ax.set_title(title)
        if key != "heldout_perplexity":
            ax.set_ylim(0, 1)
    fig.suptitle("Student probe: one small model per arm (bars: bootstrap intervals)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _stage_loss(report: dict[str, Any], path: Path) -> Path:
    order = report["order"]
    stages = order["stages"]
    fig = Figure(figsize=(4 * max(1, len(stages)), 3.2))
    axes = fig.subplots(1, max(1, len(stages)), squeeze=False)[0]
    styles = {
        "raw": ("#888", ":"),
        "raised_ordered": ("#2a7", "-"),
        "raised_shuffled": ("#7a2", "--"),
    }
    for ax, stage in zip(axes, stages, strict=False):
        for arm in ARMS:
            color, line = styles[arm]
            ax.plot(
                order["tokens_seen"], order["loss_curves"][arm][stage], line, color=color, label=arm
            )
        ax.set(title=f"{stage} (held-out)", xlabel="training tokens", ylabel="loss (nats/token)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path
