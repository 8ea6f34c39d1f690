"""Run the whole pipeline through Dagster: one `raise_shard` run per shard, then the curriculum.

`parallel` > 1 raises that many shards at once on the same Dagster instance: this process runs
one `raise_shard` run after another while `parallel - 1` worker processes (spawned, so no worker
inherits this process's Polars or DuckDB threads) run others; the curriculum is published once
all of them finished. The vLLM teacher stays serial: one engine a machine, shared by every run
of the process.

One runner at a time per output folder and per Dagster instance: `hold_output` takes an
exclusive lock file (`.raising.lock`, fcntl) in each, waiting with a message while another run
holds it. Take it before the instance is first opened (`raising run` does): two processes creating
one SQLite instance at once leave it with two alembic heads. Under the lock a run first clears
what a killed run left behind: staging and temporary files in the store, and this runner's runs
still marked as started in the instance (marked failed, with a reason).
"""

from __future__ import annotations

import fcntl
import os
import queue
import shutil
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from dagster import (
    AssetCheckSeverity,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    ExecuteInProcessResult,
    MarkdownMetadataValue,
    RunsFilter,
)
from dagster._core.instance.ref import InstanceRef

from raising_dagster.config import RaisingSettings
from raising_dagster.definitions import build_definitions
from raising_dagster.partitions import raw_shards
from raising_dagster.resources import RaisingResource
from raising_dagster.shard_workers import start_shard_workers
from raising_dagster.stages.ingest import SkippedFile, scan_landing
from raising_dagster.stages.shards import Withdrawals

# Runs log step events at INFO on the console; the full event log is in the instance (the UI).
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
RUNNER_TAG = "raising/runner"
RUNNER_TAGS = {RUNNER_TAG: "run_pipeline"}
# Which runner's lock covered a run: host and Dagster home. On PostgreSQL several homes (and
# hosts) share one instance, and a runner may only clean up after the runs of its own home.
RUNNER_HOME_TAG = "raising/runner_home"
LOCK_FILE = ".raising.lock"
# What a killed run leaves in the store: publication staging, the previous corpus being swapped
# out, DuckDB's spill folder, half-written files of store.write_parquet/write_json.
STALE_PATTERNS = (".training_ready.staging-*", ".training_ready.old.*", ".duckdb_tmp", "*/.*.tmp")
_UNFINISHED = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]

Progress = Callable[[str], None]


class OutputBusy(RuntimeError):
    """Another raising run holds the output folder or instance (raised when not waiting)."""


@dataclass
class PipelineReport:
    """What a pipeline run did: shards raised, files skipped, run ids, what it cleaned up, and why
    publication stopped, if it did."""

    shards: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)  # shards not raised: `raising withdraw`
    run_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    advisories: list[str] = field(default_factory=list)  # failed WARN checks: never block
    teacher: dict[str, float] = field(default_factory=dict)  # LLM throughput over the shard runs
    cleaned: list[str] = field(default_factory=list)
    abandoned_runs: list[str] = field(default_factory=list)
    published: bool = False
    refused: bool = False  # a blocking quality check failed, or the publication gate refused
    errored: bool = False  # a step failed for another reason (an exception)


_held: dict[tuple[str, int], int] = {}
_held_guard = threading.Lock()


@contextmanager
def _lock_folder(folder: Path, progress: Progress, wait: bool) -> Iterator[None]:
    key = (str(folder), threading.get_ident())
    with _held_guard:
        if key in _held:  # already held by this thread (reentrant)
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            if not wait:
                raise OutputBusy(
                    f"{folder} is in use by another raising run ({holder}); wait for it to end "
                    "or use another output folder"
                ) from None
            progress(f"waiting for {folder}: another raising run holds it ({holder})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(),
            0,
        )
        with _held_guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_guard:
                del _held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def hold_output(
    folders: Iterable[Path], progress: Progress = lambda message: None, wait: bool = True
) -> Iterator[None]:
    """Hold the runner's lock on each folder (the store, the Dagster home) for the block: waits,
    saying so through `progress`, while another process holds one (`wait=False`: OutputBusy).
    Folders are locked in sorted order, so two runners never hold one each; reentrant within
    a thread."""
    with ExitStack() as stack:
        for folder in sorted({Path(f).resolve() for f in folders}):
            stack.enter_context(_lock_folder(folder, progress, wait))
        yield


def lock_folder(settings: RaisingSettings) -> Path:
    """The local folder whose lock stands for the store: the store itself, or for a store on S3
    `storage.work_dir` (an S3 prefix cannot be locked: two machines writing one S3 store are not
    kept apart, two runs on one machine are)."""
    store = settings.store_dir
    return store if isinstance(store, Path) else settings.storage.work_dir


def clean_stale_files(store: Path) -> list[str]:
    """Remove what a killed run left in the store (STALE_PATTERNS); call under `hold_output`."""
    removed = []
    for pattern in STALE_PATTERNS:
        for path in sorted(store.glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(str(path))
    return removed


def runner_tags(instance: DagsterInstance) -> dict[str, str]:
    """The tags of this runner's runs: RUNNER_TAGS and the host and home whose lock it holds."""
    return {**RUNNER_TAGS, RUNNER_HOME_TAG: f"{socket.gethostname()}:{instance.root_directory}"}


def fail_abandoned_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed the runs of runners of this home (host and Dagster home) that the instance
    still shows unfinished: under `hold_output` on the home no other runner of it is alive, so
    their process died. Runs of other homes sharing a PostgreSQL instance are left alone."""
    home = runner_tags(instance)[RUNNER_HOME_TAG]
    runs = [
        run
        for run in instance.get_runs(filters=RunsFilter(statuses=_UNFINISHED, tags=RUNNER_TAGS))
        if run.tags.get(RUNNER_HOME_TAG, home) == home
    ]
    for run in runs:
        instance.report_run_failed(
            run,
            "abandoned: the raising run that started it ended without finishing (killed or "
            "crashed); marked failed by the next raising run",
        )
        if instance.event_log_storage.supports_global_concurrency_limits:
            # the `teacher` pool slot a killed step held (no daemon frees it for `raising run`)
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return [run.run_id for run in runs]


def _check_lines(result: ExecuteInProcessResult, scope: str, blocking: bool) -> list[str]:
    """One line per failed check of a severity (ERROR: blocking; WARN: advisory), with the plain
    values of its metadata (tables left to the UI)."""
    lines = []
    for e in result.get_asset_check_evaluations():
        if e.passed or (e.severity == AssetCheckSeverity.ERROR) != blocking:
            continue
        shown = {
            k: getattr(v, "value", v)
            for k, v in e.metadata.items()
            if not isinstance(v, MarkdownMetadataValue)
        }
        lines.append(
            f"[{scope}] check {e.check_name!r} on {e.asset_key.to_user_string()} failed: "
            f"{e.description or 'no description'}" + (f"; {shown}" if shown else "")
        )
    return lines


def _failures(result: ExecuteInProcessResult, scope: str) -> list[str]:
    found = _check_lines(result, scope, blocking=True)
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        while error is not None and error.cause is not None:
            error = error.cause
        message = error.message.strip() if error is not None else "unknown error"
        found.append(f"[{scope}] step {event.step_key} failed: {message}")
    return found or ([] if result.success else [f"[{scope}] run {result.run_id} failed"])


def _classify(result: ExecuteInProcessResult, report: PipelineReport) -> None:
    """Mark the report refused (quality checks) and/or errored (any other step failure)."""
    report.advisories += _check_lines(result, "advisory", blocking=False)
    if any(
        not e.passed and e.severity == AssetCheckSeverity.ERROR
        for e in result.get_asset_check_evaluations()
    ):
        report.refused = True
    for event in result.get_step_failure_events():
        data = event.event_specific_data
        error = data.error if data else None
        gate = (
            data is not None
            and data.user_failure_data is not None
            and ("failed_checks" in (data.user_failure_data.metadata or {}))
        )
        if gate or (error is not None and error.cls_name == "DagsterAssetCheckFailedError"):
            report.refused = True
        else:
            report.errored = True


@dataclass
class ShardOutcome:
    """What one `raise_shard` run did, in a form a worker process can send back."""

    key: str
    run_id: str | None
    success: bool
    report: PipelineReport


def _raise_shard(defs: Definitions, instance: DagsterInstance, key: str) -> ShardOutcome:
    result = defs.resolve_job_def("raise_shard").execute_in_process(
        partition_key=key,
        instance=instance,
        run_config=RUN_CONFIG,
        raise_on_error=False,
        tags=runner_tags(instance),
    )
    report = PipelineReport(failures=_failures(result, f"shard {key}"))
    _classify(result, report)
    return ShardOutcome(key, result.run_id, result.success, report)


@cache
def _worker_definitions(fields: tuple[tuple[str, str | None], ...]) -> Definitions:
    return build_definitions(RaisingResource(**dict(fields)))


def _raise_shard_in_worker(
    fields: tuple[tuple[str, str | None], ...], instance_ref: InstanceRef, key: str
) -> ShardOutcome:
    """A worker process's `raise_shard` run: the parent's settings, its instance, one shard."""
    os.environ["RAISING_PROGRESS"] = "0"  # bars of several processes would overwrite each other
    with DagsterInstance.from_ref(instance_ref) as instance:
        return _raise_shard(_worker_definitions(fields), instance, key)


def _settings_fields(raising: RaisingResource) -> tuple[tuple[str, str | None], ...]:
    """The settings resource's fields, for a worker to build the same resource."""
    return tuple((name, getattr(raising, name)) for name in sorted(RaisingResource.model_fields))


def _raise_in_parallel(
    raising: RaisingResource,
    defs: Definitions,
    instance: DagsterInstance,
    keys: list[str],
    runs_at_once: int,
    workers: ProcessPoolExecutor | None = None,
) -> Iterator[ShardOutcome]:
    """`raise_shard` for every key, `runs_at_once` at a time: this process runs one after
    another itself while `runs_at_once - 1` worker processes (`workers`, else started here) run
    the others (each process imports Dagster, Great Expectations and the stages once). Outcomes
    come as this process finishes its runs, the workers' in between; a worker that dies fails
    its shard."""
    todo = deque(keys)
    taking = threading.Lock()
    finished: queue.SimpleQueue[ShardOutcome | BaseException] = queue.SimpleQueue()
    stop = threading.Event()

    def take() -> str | None:
        with taking:
            return todo.popleft() if todo and not stop.is_set() else None

    def dispatch(pool: ProcessPoolExecutor) -> None:
        fields, ref = _settings_fields(raising), instance.get_ref()
        running: dict[Future[ShardOutcome], str] = {}
        try:
            while True:
                while len(running) < runs_at_once - 1 and (key := take()) is not None:
                    running[pool.submit(_raise_shard_in_worker, fields, ref, key)] = key
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    key = running.pop(future)
                    try:
                        finished.put(future.result())
                    except BrokenProcessPool as exc:
                        failed = PipelineReport(
                            failures=[f"[shard {key}] its worker process died: {exc}"],
                            errored=True,
                        )
                        finished.put(ShardOutcome(key, None, False, failed))
        except BaseException as exc:  # handed to the main thread, which raises it
            finished.put(exc)

    def drain() -> Iterator[ShardOutcome]:
        while not finished.empty():
            item = finished.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    pool = workers if workers is not None else start_shard_workers(runs_at_once - 1)
    dispatcher = threading.Thread(target=dispatch, args=(pool,), name="raise-dispatch")
    dispatcher.start()
    try:
        while (key := take()) is not None:
            yield _raise_shard(defs, instance, key)
            yield from drain()
    finally:
        stop.set()  # after an error here: start no other run
        dispatcher.join()
        # every run has ended; the workers' exits (about 1.5 s: their interpreters' teardown)
        # overlap what comes next instead of delaying it
        pool.shutdown(wait=False)
    yield from drain()


def run_pipeline(
    raising: RaisingResource,
    instance: DagsterInstance,
    progress: Progress = lambda message: None,
    parallel: int = 1,
    workers: ProcessPoolExecutor | None = None,
) -> PipelineReport:
    """Register every shard of the landing folder, raise each (`parallel` at a time, module doc),
    then publish the curriculum unless a blocking check failed; `progress` hears a line per
    finished run and per skipped file. Holds the store and the instance folder (module doc). A
    vLLM engine started by the runs is shared by all of them and shut down at the end.
    `workers`: at most `parallel - 1` worker processes started earlier (`start_shard_workers`),
    shut down here, used or not."""
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    folders = [lock_folder(raising.settings), Path(instance.root_directory)]
    try:
        with hold_output(folders, progress):
            return _run_pipeline(raising, instance, progress, parallel, workers)
    finally:
        if workers is not None:
            workers.shutdown(wait=False)
        if "raising_dagster.teacher.vllm" in sys.modules:
            sys.modules["raising_dagster.teacher.vllm"].shutdown_engines()


def _run_pipeline(
    raising: RaisingResource,
    instance: DagsterInstance,
    progress: Progress,
    parallel: int,
    workers: ProcessPoolExecutor | None,
) -> PipelineReport:
    report = PipelineReport()
    report.cleaned = clean_stale_files(raising.layout.local_dir)
    if report.cleaned:
        progress(f"removed {len(report.cleaned)} files left by an interrupted run")
    report.abandoned_runs = fail_abandoned_runs(instance)
    for run_id in report.abandoned_runs:
        progress(f"run {run_id} was left unfinished by a killed process: marked failed")
    defs = build_definitions(raising)
    scan = scan_landing(raising.settings.landing_dir)
    report.shards, report.skipped = list(scan.shards), scan.skipped
    for skipped in scan.skipped:
        progress(skipped.line())
    if not report.shards:
        report.failures.append(f"no shards found in {raising.settings.landing_dir}")
        return report
    known = set(instance.get_dynamic_partitions(raw_shards.name))
    instance.add_dynamic_partitions(raw_shards.name, [k for k in report.shards if k not in known])
    # a withdrawn shard (a license or privacy request) is not read again; publication leaves it out
    withdrawn = Withdrawals.load(raising.layout.withdrawals_file).shards
    report.withdrawn = [k for k in report.shards if k in withdrawn]
    for key in report.withdrawn:
        progress(f"shard {key} is withdrawn ({withdrawn[key]}): not raised")
    to_raise = [k for k in report.shards if k not in withdrawn]
    runs_at_once = min(parallel, len(to_raise))
    if runs_at_once > 1 and raising.settings.teacher.backend == "vllm":
        progress("the vllm teacher raises one shard at a time (one engine a machine)")
        runs_at_once = 1
    if runs_at_once > 1 and instance.is_ephemeral:
        progress("an ephemeral Dagster instance raises one shard at a time (no process shares it)")
        runs_at_once = 1
    outcomes: Iterable[ShardOutcome] = (
        (_raise_shard(defs, instance, key) for key in to_raise)
        if runs_at_once <= 1
        else _raise_in_parallel(raising, defs, instance, to_raise, runs_at_once, workers)
    )
    finished: dict[str, ShardOutcome] = {}
    for outcome in outcomes:
        finished[outcome.key] = outcome
        state = "ok" if outcome.success else "FAILED"
        progress(f"raise_shard {outcome.key}: {state} (run {outcome.run_id})")
    for key in to_raise:  # reported in shard order, however the runs finished
        shard = finished[key].report
        report.run_ids += [finished[key].run_id] if finished[key].run_id else []
        report.failures += shard.failures
        report.advisories += shard.advisories
        report.refused |= shard.refused
        report.errored |= shard.errored
    if report.failures:
        return report
    result = defs.resolve_job_def("publish_curriculum").execute_in_process(
        instance=instance, run_config=RUN_CONFIG, raise_on_error=False, tags=runner_tags(instance)
    )
    report.run_ids.append(result.run_id)
    report.failures += _failures(result, "curriculum")
    _classify(result, report)
    report.published = not report.failures
    report.teacher = teacher_throughput(instance, report.run_ids)
    return report


def teacher_throughput(instance: DagsterInstance, run_ids: list[str]) -> dict[str, float]:
    """The LLM's calls, generated tokens and generation time over the framing steps of some runs
    (from their materializations' metadata), with tokens and documents per second; empty when no
    model generated anything."""
    totals = {"calls": 0.0, "tokens": 0.0, "seconds": 0.0, "documents": 0.0}
    for run_id in run_ids:
        for record in instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ).records:
            materialization = record.event_log_entry.asset_materialization
            metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            if "llm_generated_tokens" not in metadata:
                continue
            totals["calls"] += metadata["llm_calls"]
            totals["tokens"] += metadata["llm_generated_tokens"]
            totals["seconds"] += metadata["llm_generation_s"]
            totals["documents"] += metadata.get("llm_tried", 0)
    if not totals["tokens"]:
        return {}
    return {
        **totals,
        "tokens_per_s": totals["tokens"] / totals["seconds"] if totals["seconds"] else 0.0,
        "documents_per_s": totals["documents"] / totals["seconds"] if totals["seconds"] else 0.0,
    }
