"""`raising`: run the pipeline headless through Dagster, and make synthetic corpora."""

import json
import os
import sys
import warnings
from pathlib import Path

import click
import polars as pl

from raising_dagster.config import SAMPLE_CORPUS

_PATH = click.Path(path_type=Path)


@click.group()
def main() -> None:
    """raising-dagster: turn a raw pre-training corpus into a model-raising corpus."""


@main.command()
@click.option(
    "--landing",
    type=_PATH,
    default=SAMPLE_CORPUS,
    show_default="the bundled sample",
    help="Folder of raw shards (JSONL, JSONL.gz/.zst, Parquet, .txt).",
)
@click.option("--out", type=_PATH, required=True, help="Store folder for every asset's files.")
@click.option("--teacher", default=None, help="Teacher backend (default from config: template).")
@click.option(
    "--codex", type=_PATH, default=None, help="Value codex YAML (default: the bundled one)."
)
@click.option(
    "--config", type=_PATH, default=None, help="Settings YAML (RAISING_* env vars override)."
)
@click.option(
    "--dagster-home",
    type=_PATH,
    default=None,
    help="Dagster instance folder [default: $DAGSTER_HOME, else OUT/dagster_home].",
)
def run(
    landing: Path,
    out: Path,
    teacher: str | None,
    codex: Path | None,
    config: Path | None,
    dagster_home: Path | None,
) -> None:
    """Raise every shard in LANDING through Dagster and publish OUT/training_ready."""
    home = (dagster_home or Path(os.environ.get("DAGSTER_HOME") or out / "dagster_home")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")

    from dagster import DagsterInstance

    from raising_dagster.resources import RaisingResource
    from raising_dagster.runner import run_pipeline

    raising = RaisingResource(
        config_file=str(config) if config else None,
        landing_dir=str(landing.resolve()),
        store_dir=str(out.resolve()),
        teacher=teacher,
        codex_path=str(codex.resolve()) if codex else None,
    )
    try:
        raising.settings  # noqa: B018 - validate settings before any run starts
    except ValueError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from exc
    with DagsterInstance.get() as instance:
        report = run_pipeline(raising, instance, progress=click.echo)
    if not report.published:
        click.echo("Publication stopped; the training-ready corpus was not (re)written:", err=True)
        for failure in report.failures:
            click.echo(f"  - {failure}", err=True)
        sys.exit(2)
    _summary(out.resolve(), len(report.shards), home)


def _summary(out: Path, n_shards: int, home: Path) -> None:
    manifest = json.loads((out / "training_ready" / "manifest.json").read_text())
    click.echo(
        f"\nPublished {manifest['records']} records from {n_shards} shards: "
        + (
            f"{manifest['tokens']} tokens ({manifest['tokenized']['tokenizer']} tokenizer)."
            if manifest["tokenized"]["enabled"]
            else f"about {manifest['approx_tokens']} tokens (no tokenizer)."
        )
    )
    for stage in manifest["stages"]:
        click.echo(
            f"  {stage['name']:<12} {stage['records']:>7} records {stage.get('tokens', ''):>9} "
            f"tokens  positions {stage['first_position']}..{stage['last_position']}"
        )
    quarantined = sum(s["quarantined"] for s in manifest["input_shards"])
    click.echo(f"Training-ready corpus: {out / 'training_ready'}")
    click.echo(f"Quarantine ({quarantined} records): {out / 'quarantine'}")
    click.echo(f"Dagster home (for `make ui`): {home}")
    records = pl.scan_parquet(out / "training_ready" / "part-*.parquet")
    for variant in ("experiential", "social"):
        example = records.filter(pl.col("variant") == variant).head(1).collect()
        if example.height:
            row = example.row(0, named=True)
            click.echo(
                f"\n--- {variant} rendering, position {row['position']} ({row['stage']}) ---"
            )
            click.echo(row["text"])


@main.command()
@click.option("--docs", "n_docs", type=click.IntRange(min=1), required=True)
@click.option("--out", type=_PATH, required=True)
@click.option("--shards", "n_shards", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def synth(n_docs: int, out: Path, n_shards: int, seed: int) -> None:
    """Write a seeded synthetic raw corpus of N documents (for benchmarks)."""
    from raising_dagster.stages.synth import write_synth_corpus

    paths = write_synth_corpus(out, n_docs, n_shards, seed)
    click.echo(f"wrote {n_docs} documents in {len(paths)} shards to {out}")
